"""diag_drift_checks: one row per drift check of a capture.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the drift check history and its time index.

    No foreign key to diagnostic_capture: the drift history outlives a capture that garbage
    collection deletes.
    """
    op.create_table(
        "diag_drift_checks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=True),
            primary_key=True,
        ),
        sa.Column("capture_key", sa.Text(), nullable=False),
        sa.Column("cell_ref", sa.Text(), nullable=False),
        sa.Column("drifted", sa.Boolean().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "checked_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.CheckConstraint("drifted IN (0, 1)").ddl_if(dialect="sqlite"),
        sqlite_autoincrement=True,
    )
    op.create_index("diag_drift_checks_checked_at_idx", "diag_drift_checks", ["checked_at"])


def downgrade() -> None:
    """Drops the drift check history."""
    op.drop_table("diag_drift_checks")
