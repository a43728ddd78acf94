"""diagnostic_capture: one row per capture key.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The column types of the hand-written schema this revision replaces: INTEGER and ISO-8601
# text on SQLite, BIGINT and TIMESTAMPTZ on PostgreSQL.
_BIG_INTEGER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Creates the table of captures and its two lookup indexes."""
    op.create_table(
        "diagnostic_capture",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("request_key", sa.Text(), nullable=False),
        sa.Column("cell_ref", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("source_version", sa.Text(), nullable=False),
        sa.Column("artifact_uri", sa.Text()),
        sa.Column("x_hash", sa.Text()),
        sa.Column("y_hash", sa.Text()),
        sa.Column("trial_log_hash", sa.Text()),
        sa.Column("content_hash", sa.Text()),
        sa.Column("bytes", _BIG_INTEGER),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.Column("last_used_at", _TIMESTAMP),
        sa.Column("use_count", _BIG_INTEGER, nullable=False, server_default=sa.text("0")),
        sa.Column("producing_run_id", sa.Text()),
        sa.Column("status_reason", sa.Text()),
        sa.CheckConstraint("status IN ('capturing', 'complete', 'failed', 'stale')"),
    )
    op.create_index(
        "diagnostic_capture_request_idx",
        "diagnostic_capture",
        ["request_key", "status", "created_at"],
    )
    op.create_index("diagnostic_capture_cell_idx", "diagnostic_capture", ["cell_ref"])


def downgrade() -> None:
    """Drops the table of captures (and every row in it)."""
    op.drop_table("diagnostic_capture")
