"""The ``email_tokens`` table: one-time links sent by mail (SECURITY.md S33, S34, S37).

One table for every kind of link: email verification, password reset, email change, and the
undo link of an email change. A row holds only the SHA-256 of the token (the raw token exists in
the mail alone), the address the link was sent to (``email``: the account's address for
verification and reset, the new address for a change, the old address, which the undo link
restores, for an undo), when it expires and when it was used. Issuing a new token of a kind
deletes the user's older ones of that kind, so at most one link per kind and user is ever live
(superseded, S33); undo links are the exception: each changed-away address keeps its own.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.database import Base, ISOTimestamp, UUIDPrimaryKeyMixin, UUIDv7
from shared.database.types import enum_column


class TokenKind(enum.StrEnum):
    """What a link does when followed."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    CHANGE_EMAIL = "change_email"
    REVERT_EMAIL = "revert_email"  # to the old address after a change: undo it (7 days)


class EmailToken(UUIDPrimaryKeyMixin, Base):
    """One mailed link of one user."""

    __tablename__ = "email_tokens"
    __table_args__ = (Index("ix_email_tokens_user_id_kind", "user_id", "kind"),)

    user_id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[TokenKind] = mapped_column(enum_column(TokenKind, "kind"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp())
    expires_at: Mapped[datetime] = mapped_column(ISOTimestamp())
    used_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
