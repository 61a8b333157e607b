"""The ``two_factor_recovery_codes`` table (SECURITY.md S30).

The TOTP secret itself lives on ``users`` (``two_factor_secret``, encrypted; seed schema), with
``two_factor_enabled``, ``two_factor_confirmed_at`` and ``two_factor_last_step``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared import clock
from shared.database import Base, ISOTimestamp, UUIDPrimaryKeyMixin, UUIDv7


class RecoveryCode(UUIDPrimaryKeyMixin, Base):
    """One single-use recovery code of a user, stored as the SHA-256 of its normalised text."""

    __tablename__ = "two_factor_recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp(), default=clock.now)
