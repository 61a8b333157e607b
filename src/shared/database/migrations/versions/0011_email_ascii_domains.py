"""users.email: internationalised domains in their ASCII form

Addresses are now stored with an internationalised domain in its ASCII (IDNA, punycode) form,
and sign-in looks them up in that form, so ``ann@bücher.example`` and
``ann@xn--bcher-kva.example`` are one account that the SMTP transport can mail. Accounts made
before kept the Unicode spelling and would no longer be found: this rewrites each such
address to the form ``features.users.service.normalise_email`` gives (email-validator with
``allow_smtputf8=False``; RFC 5890). An address it cannot rewrite is left as it was: one whose
local part (before the @) is not ASCII, or whose ASCII form another account already has (an
administrator must merge those by hand; the upgrade names each one on stderr). The downgrade
changes nothing: the ASCII form is a valid address for the earlier code too.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 09:40:00.000000
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table("users", sa.column("id"), sa.column("email"))


def _ascii_form(email: str) -> str | None:
    """The ASCII form of ``email`` as sign-in now normalises it, or None when it has none."""
    try:
        valid = validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return valid.ascii_email.lower() if valid.ascii_email else None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(users.c.id, users.c.email)).all()
    taken = {email for _, email in rows}
    for user_id, email in rows:
        if email.isascii():
            continue
        ascii_email = _ascii_form(email)
        if ascii_email is None or ascii_email in taken:
            print(f"0011: left {email!r} as it is (no ASCII form, or taken)", file=sys.stderr)
            continue
        conn.execute(users.update().where(users.c.id == user_id).values(email=ascii_email))
        taken.add(ascii_email)


def downgrade() -> None:
    pass
