"""The ``audit_events`` table: the security audit trail (SECURITY.md S52).

One row per security event (OWASP Logging Vocabulary names). ``user_id`` is the account the
event is about and ``actor_id`` who caused it. Both reference ``users`` with ``ON DELETE SET
NULL``, not CASCADE: deleting an account must not erase the evidence of what happened to it or
what its holder did (the ``user_deleted`` event itself must survive); the rows age out through
``litestar audit prune``. Never holds passwords, codes, tokens or session ids.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.database import Base, ISOTimestamp, UUIDPrimaryKeyMixin, UUIDv7


class AuditEvent(UUIDPrimaryKeyMixin, Base):
    """One security event."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_id_occurred_at", "user_id", "occurred_at"),)

    occurred_at: Mapped[datetime] = mapped_column(ISOTimestamp(), index=True)
    event: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
