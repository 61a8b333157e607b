"""tasks: the (user_id, status) index also covers created_at

``ix_tasks_user_id_status`` becomes ``ix_tasks_user_id_status_created_at``. The dashboard's
figures (counts by status and since a date, one user's rows) are then read from the index
alone instead of visiting each task row, and a task list filtered by status reads its rows in
``created_at`` order without sorting them. The new index replaces the old one, whose every
use it serves, so writes keep the same number of indexes to update.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 19:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_user_id_status_created_at", ["user_id", "status", "created_at"], unique=False
        )
        batch_op.drop_index("ix_tasks_user_id_status")


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_user_id_status", ["user_id", "status"], unique=False)
        batch_op.drop_index("ix_tasks_user_id_status_created_at")
