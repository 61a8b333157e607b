"""email tokens

The ``email_tokens`` table: one-time links sent by mail (email verification, password reset,
email change; SECURITY.md S33). Only SHA-256 hashes of the tokens are stored. A new table: no
existing row is touched, and the downgrade drops it.

Revision ID: 0009
Revises: 0005
Create Date: 2026-11-30 04:44:32.692511
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.database.types

revision: str = "0009"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_tokens",
        sa.Column("id", shared.database.types.UUIDv7(), nullable=False),
        sa.Column("user_id", shared.database.types.UUIDv7(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "verify_email",
                "reset_password",
                "change_email",
                name="kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", shared.database.types.ISOTimestamp(), nullable=False),
        sa.Column("expires_at", shared.database.types.ISOTimestamp(), nullable=False),
        sa.Column("used_at", shared.database.types.ISOTimestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_tokens_token_hash")),
    )
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_email_tokens_user_id_kind", ["user_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_email_tokens_user_id_kind")

    op.drop_table("email_tokens")
