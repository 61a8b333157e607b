"""Reading the audit trail from tests (its listener writes after the response)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import select

from features.audit.models import AuditEvent


async def audit_rows(app) -> list[AuditEvent]:
    async with app.state.db.reader() as session:
        return list(
            (await session.scalars(select(AuditEvent).order_by(AuditEvent.occurred_at))).all()
        )


async def wait_for_events(
    app, predicate: Callable[[list[AuditEvent]], bool], timeout: float = 2.0
) -> list[AuditEvent]:
    """Poll the table (every 20 ms, up to ``timeout`` s) until ``predicate(rows)`` holds."""
    rows: list[AuditEvent] = []
    for _ in range(int(timeout / 0.02)):
        rows = await audit_rows(app)
        if predicate(rows):
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"audit events never matched: {[r.event for r in rows]}")


def names(rows: list[AuditEvent]) -> list[str]:
    return [r.event for r in rows]
