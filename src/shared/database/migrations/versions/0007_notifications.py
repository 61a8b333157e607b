"""notifications: per-user notifications with unread-count and newest-first indexes

Revision ID: 0007
Revises: 0008
Create Date: 2026-11-23 10:20:23.881279
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.database.types

revision: str = "0007"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", shared.database.types.UUIDv7(), nullable=False),
        sa.Column("user_id", shared.database.types.UUIDv7(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "info",
                "success",
                "warning",
                "error",
                name="notification_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("read_at", shared.database.types.ISOTimestamp(), nullable=True),
        sa.Column("created_at", shared.database.types.ISOTimestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_user_id_created_at", ["user_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_notifications_user_id_read_at", ["user_id", "read_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_id_read_at")
        batch_op.drop_index("ix_notifications_user_id_created_at")

    op.drop_table("notifications")
