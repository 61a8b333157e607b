"""All SQL about audit events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

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

    async def seen_origin(
        self,
        user_id: uuid.UUID,
        limit: int,
        events: Sequence[str],
        *,
        ip_address: str | None,
        browser: str,
        os: str,
    ) -> bool:
        """True when one of the newest ``limit`` ``events`` about ``user_id`` came from
        ``ip_address`` with ``browser`` and ``os`` in its details (one query; the details are
        compared in SQL, so no JSON is decoded here: this runs on every sign-in)."""
        a = AuditEvent.__table__
        newest = (
            select(a.c.ip_address, a.c.details)
            .where(a.c.user_id == user_id, a.c.event.in_(list(events)))
            .order_by(a.c.occurred_at.desc(), a.c.id.desc())
            .limit(limit)
            .subquery()
        )
        match = select(newest.c.ip_address).where(
            newest.c.ip_address == ip_address,  # NULL matches NULL (IS NULL)
            newest.c.details["browser"].as_string() == browser,
            newest.c.details["os"].as_string() == os,
        )
        return (await self.session.execute(match.limit(1))).first() is not None

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete events that occurred before ``cutoff``; returns how many."""
        result = await self.session.execute(
            delete(AuditEvent).where(AuditEvent.occurred_at < cutoff)
        )
        return result.rowcount or 0
