"""All SQL about audit events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select

from features.audit.models import AuditEvent
from shared.database import Repository


class AuditRepository(Repository[AuditEvent]):
    """Audit events through an ORM session."""

    model = AuditEvent

    async def recent_for_user(
        self, user_id: uuid.UUID, limit: int = 50, events: Sequence[str] | None = None
    ) -> list[AuditEvent]:
        """The newest ``limit`` events about ``user_id`` (optionally only ``events``), newest first."""
        stmt = select(AuditEvent).where(AuditEvent.user_id == user_id)
        if events is not None:
            stmt = stmt.where(AuditEvent.event.in_(list(events)))
        stmt = stmt.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def recent_origins(
        self, user_id: uuid.UUID, limit: int, events: Sequence[str]
    ) -> list[Row[Any]]:
        """``(ip_address, details)`` of the newest ``limit`` ``events`` about ``user_id``, newest
        first: two columns as Core rows, no ORM objects (read on every sign-in)."""
        a = AuditEvent.__table__
        stmt = (
            select(a.c.ip_address, a.c.details)
            .where(a.c.user_id == user_id, a.c.event.in_(list(events)))
            .order_by(a.c.occurred_at.desc(), a.c.id.desc())
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete events that occurred before ``cutoff``; returns how many."""
        result = await self.session.execute(
            delete(AuditEvent).where(AuditEvent.occurred_at < cutoff)
        )
        return result.rowcount or 0
