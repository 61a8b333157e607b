"""The ``sessions`` table: server-side browser sessions (SECURITY.md S10–S16).

Seed columns: id, user_id, ip_address, user_agent, payload, last_activity. Added: the SHA-256
``token_hash`` of the cookie value (the token itself is never stored), ``remember``,
``created_at`` and ``expires_at`` (the absolute timeout), ``pending_2fa_until`` (a password-only
login waiting for its two-factor challenge, S12). ``payload`` holds the CSRF secret
and other per-session state as JSON.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.database import Base, ISOTimestamp, UUIDPrimaryKeyMixin, UUIDv7


class BrowserSession(UUIDPrimaryKeyMixin, Base):
    """One signed-in browser."""

    __tablename__ = "sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remember: Mapped[bool] = mapped_column(Boolean(name="remember"), default=False)
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp())
    last_activity: Mapped[datetime] = mapped_column(ISOTimestamp())
    expires_at: Mapped[datetime] = mapped_column(ISOTimestamp(), index=True)
    # Set while the row is only a pending two-factor login (S12): until this instant it opens
    # the challenge and nothing else; NULL for a signed-in session.
    pending_2fa_until: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
