"""email token kind: revert_email

The link in the "your email address was changed" notice, which undoes the change, is a new kind
of row in ``email_tokens``: the ``kind`` CHECK constraint gains ``revert_email``. No row changes
on the way up; the downgrade deletes the rows of that kind (links that could not exist before)
and restores the old constraint.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "ck_email_tokens_kind"
OLD_KINDS = ("verify_email", "reset_password", "change_email")
NEW_KINDS = (*OLD_KINDS, "revert_email")


def _set_kinds(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(CONSTRAINT), type_="check")
        batch_op.create_check_constraint(op.f(CONSTRAINT), sa.column("kind").in_(kinds))


def upgrade() -> None:
    _set_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM email_tokens WHERE kind = 'revert_email'"))
    _set_kinds(OLD_KINDS)
