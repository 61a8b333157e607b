"""All SQL about audit events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from features.audit.models import AuditEvent
from shared.database import Repository

_a = AuditEvent.__table__
_newest_sign_ins = (
    select(_a.c.ip_address, _a.c.details)
    .where(
        _a.c.user_id == bindparam("user_id"), _a.c.event.in_(bindparam("events", expanding=True))
    )
    .order_by(_a.c.occurred_at.desc(), _a.c.id.desc())
    .limit(bindparam("limit"))
    .subquery()
)
# Built once, run with bound parameters: it runs on every sign-in (DESIGN.md §3 cost model).
_SEEN_ORIGIN = (
    select(_newest_sign_ins.c.ip_address)
    .where(
        _newest_sign_ins.c.ip_address.is_not_distinct_from(bindparam("ip_address")),  # NULL = NULL
        _newest_sign_ins.c.details["browser"].as_string() == bindparam("browser"),
        _newest_sign_ins.c.details["os"].as_string() == bindparam("os"),
    )
    .limit(1)
)


async def seen_origin(
    engine: AsyncEngine,
    user_id: uuid.UUID,
    limit: int,
    events: Sequence[str],
    *,
    ip_address: str | None,
    browser: str,
    os: str,
) -> bool:
    """True when one of the newest ``limit`` ``events`` about ``user_id`` came from
    ``ip_address`` (``None`` matches an event without one) with ``browser`` and ``os`` in its
    details. One SELECT on its own connection of ``engine`` (pass
    ``Database.single_read_engine``); the details are compared in SQL, so no JSON is decoded
    here: this runs on every sign-in."""
    params = {
        "user_id": user_id,
        "events": list(events),
        "limit": limit,
        "ip_address": ip_address,
        "browser": browser,
        "os": os,
    }
    async with engine.connect() as conn:
        row = (await conn.execute(_SEEN_ORIGIN, params)).first()
        await conn.rollback()
    return row is not None


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

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete events that occurred before ``cutoff``; returns how many."""
        result = await self.session.execute(
            delete(AuditEvent).where(AuditEvent.occurred_at < cutoff)
        )
        return result.rowcount or 0
