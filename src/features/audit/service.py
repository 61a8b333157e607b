"""The audit trail's public face (SECURITY.md S52; OWASP Logging Cheat Sheet).

Every :data:`shared.events.SECURITY_EVENT` becomes one ``audit_events`` row: the listener
:func:`record_security_event` queues it, and the worker's
:class:`features.audit.writer.AuditWriter` writes it after the response, in batches. Other
features read a user's trail through :func:`recent_for_user` and ask :func:`is_new_device`;
code without a running app (the command line) writes an event with :func:`record`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from litestar.datastructures import State
from litestar.events import listener
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from features.audit.models import AuditEvent
from features.audit.repository import AuditRepository, seen_origin
from shared import clock
from shared.database import Database
from shared.events import SECURITY_EVENT, SecurityEvent
from shared.web.client import Device

logger = logging.getLogger("slicestar.audit")

# Detail keys that could carry a secret are dropped, whatever the emitter meant (S52).
_SECRET_WORDS = ("password", "token", "code", "secret", "session", "otp", "cookie", "hash")
_MAX_DETAIL_CHARS = 200
_MAX_DETAILS = 12
LOGIN_EVENTS = ("authn_login_success",)


def clean_details(details: dict[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of ``details`` without secret-looking keys, strings cut to 200 chars."""
    out: dict[str, Any] = {}
    for key, value in list(details.items())[:_MAX_DETAILS]:
        name = str(key)[:40]
        if any(word in name.lower() for word in _SECRET_WORDS):
            continue
        if value is None or isinstance(value, bool | int | float):
            out[name] = value
        else:
            out[name] = str(value)[:_MAX_DETAIL_CHARS]
    return out


def row_for(event: SecurityEvent) -> AuditEvent:
    """The ``audit_events`` row for ``event``."""
    return AuditEvent(
        occurred_at=event.occurred_at,
        event=event.name[:64],
        actor_id=event.actor_id,
        user_id=event.user_id,
        ip_address=(event.ip_address or None) and event.ip_address[:45],
        user_agent=(event.user_agent or None) and event.user_agent[:512],
        request_id=(event.request_id or None) and event.request_id[:64],
        outcome=event.outcome,
        details=clean_details(event.details),
    )


@listener(SECURITY_EVENT)
async def record_security_event(event: SecurityEvent, state: State) -> None:
    """Queue ``event`` for ``audit_events``: the worker's
    :class:`features.audit.writer.AuditWriter` (``state.audit_writer``) writes it after the
    response, in a batch with the events that came meanwhile (:func:`write_events`).

    Once the writer has stopped (the app shutting down while Litestar's emitter still hands
    out the last events) the event is written here, on its own. A failure then is logged
    (event name and request id only) and swallowed: the response has already been sent.
    """
    writer = state.audit_writer
    if writer.running:
        writer.submit(event)
        return
    try:
        await write_events(state.db, [event])
    except Exception:
        logger.exception(
            "audit event not recorded: %s [request_id=%s]", event.name, event.request_id
        )


async def write_events(db: Database, events: list[SecurityEvent]) -> None:
    """Write ``events`` to ``audit_events`` in one write transaction.

    An event about an account that no longer exists (``user_deleted``: the row went with the
    deletion) cannot reference it. When the batch fails on such a reference
    (``IntegrityError``), each event is written on its own, and one that fails so is stored
    with the user and actor columns empty and their ids in ``details`` (``deleted_user_id``,
    ``deleted_actor_id``), so the evidence survives. Other errors propagate.
    """
    try:
        async with db.write() as session:
            await AuditRepository(session).insert_many([row_for(event) for event in events])
    except IntegrityError:
        for event in events:
            try:
                async with db.write() as session:
                    await AuditRepository(session).insert(row_for(event))
            except IntegrityError:
                async with db.write() as session:
                    await AuditRepository(session).insert(_detached_row(event))


def _detached_row(event: SecurityEvent) -> AuditEvent:
    """``row_for(event)`` without the foreign keys, their ids kept as details."""
    row = row_for(event)
    row.user_id = row.actor_id = None
    ids = {"deleted_user_id": event.user_id, "deleted_actor_id": event.actor_id}
    row.details = {**row.details, **{k: str(v) for k, v in ids.items() if v is not None}}
    return row


async def recent_for_user(
    session: AsyncSession, user_id: uuid.UUID, limit: int = 50
) -> list[AuditEvent]:
    """The newest ``limit`` (default 50) events about ``user_id``, newest first.

    Reads through ``session``, the caller's (a request's own), so a page that already holds
    a connection never waits for a second one from the same pool.
    """
    return await AuditRepository(session).recent_for_user(user_id, limit)


async def is_new_device(
    db: Database, user_id: uuid.UUID, device: Device, ip_address: str | None
) -> bool:
    """True when no earlier recorded sign-in of ``user_id`` came from this browser, OS and IP.

    Compares with the last 200 ``authn_login_success`` events (their ``browser``/``os``
    details and IP column).
    """
    seen = await seen_origin(
        db.single_read_engine,
        user_id,
        200,
        LOGIN_EVENTS,
        ip_address=ip_address,
        browser=device.browser,
        os=device.os,
    )
    return not seen


async def prune(db: Database, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete events older than ``older_than`` before ``now``; returns how many were deleted."""
    cutoff = (now or clock.now()) - older_than
    async with db.write() as session:
        return await AuditRepository(session).delete_older_than(cutoff)


async def record(db: Database, event: SecurityEvent) -> None:
    """Write ``event`` to ``audit_events`` now, in its own transaction, for code that runs
    without the app's event listeners (the command line). Errors propagate to the caller."""
    async with db.write() as session:
        await AuditRepository(session).insert(row_for(event))
