"""diagnostic_capture.attempt_id: which capture attempt the row belongs to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Adds the attempt id that fences a capture's commit to the attempt that began it.

    Nullable: rows written before attempts existed have none, and no attempt can complete or
    fail them (a new attempt begins them again first).
    """
    op.add_column("diagnostic_capture", sa.Column("attempt_id", sa.Text()))


def downgrade() -> None:
    """Drops the attempt ids (the rows stay)."""
    op.drop_column("diagnostic_capture", "attempt_id")
