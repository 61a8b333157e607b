"""assets and avatars

The ``assets`` table, and ``users.avatar_asset_id`` (nullable, ON DELETE SET NULL). The two
tables reference each other, so the users → assets key is added after ``assets`` exists and
dropped before it goes. On SQLite the users table is copied by batch mode; env.py runs this
with foreign keys off so the copy cannot cascade into child rows.

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-23 10:15:14.353816
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.database.types

revision: str = "0008"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", shared.database.types.UUIDv7(), nullable=False),
        sa.Column("user_id", shared.database.types.UUIDv7(), nullable=False),
        sa.Column("filename", sa.String(length=64), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=128), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("thumbnail_path", sa.String(length=128), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("created_at", shared.database.types.ISOTimestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("path", name=op.f("uq_assets_path")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assets_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("avatar_asset_id", shared.database.types.UUIDv7(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_users_avatar_asset_id"), ["avatar_asset_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_users_avatar_asset_id_assets",
            "assets",
            ["avatar_asset_id"],
            ["id"],
            ondelete="SET NULL",
            use_alter=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("fk_users_avatar_asset_id_assets", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_users_avatar_asset_id"))
        batch_op.drop_column("avatar_asset_id")

    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_user_id_created_at")

    op.drop_table("assets")
