"""The audit writer: events written after the responses, in batches (SECURITY.md S52, R2)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from features.audit.writer import AuditWriter
from shared import clock
from shared.events import SecurityEvent
from tests.features.audit.helpers import audit_rows, names, wait_for_events
from tests.support import csrf, register


def _event(name: str, user_id: uuid.UUID | None = None) -> SecurityEvent:
    return SecurityEvent(
        name=name,
        user_id=user_id,
        actor_id=user_id,
        outcome="failure",
        ip_address="192.0.2.1",
        user_agent="test",
        request_id=name,
        occurred_at=clock.now(),
    )


async def test_r2_s52_a_flood_of_refused_forms_is_recorded_whole_and_other_writes_go_on(
    client, app
):
    # 400 forms posted with a forged token at once: every refusal is in the trail, in
    # batches, and a task created in the middle of the flood is stored (no 503).
    await register(client, "ann@example.com")
    token = await csrf(client, "/tasks")
    before = app.state.audit_writer.batches

    async def forged(n: int) -> int:
        answer = await client.post("/tasks", data={"title": f"x{n}", "_csrf_token": "forged"})
        return answer.status_code

    flood = [asyncio.create_task(forged(n)) for n in range(400)]
    created = await client.post("/tasks", data={"title": "real work", "_csrf_token": token})
    assert sorted(set(await asyncio.gather(*flood))) == [403]
    assert created.status_code == 303
    rows = await wait_for_events(app, lambda r: names(r).count("malicious_csrf") == 400, timeout=20)
    assert names(rows).count("malicious_csrf") == 400
    assert app.state.audit_writer.batches - before < 400  # several events per transaction
    assert "real work" in (await client.get("/tasks")).text


async def test_s52_a_batch_with_an_event_about_a_deleted_account_keeps_every_event(client, app):
    writer = AuditWriter(app.state.db)
    writer.start()
    gone = uuid.uuid4()  # no such account: the row cannot reference it
    for name in ("first_event", "about_a_deleted_account", "last_event"):
        writer.submit(_event(name, gone if name == "about_a_deleted_account" else None))
    await writer.stop()
    rows = {r.event: r for r in await audit_rows(app)}
    assert {"first_event", "about_a_deleted_account", "last_event"} <= rows.keys()
    detached = rows["about_a_deleted_account"]
    assert detached.user_id is None and detached.details["deleted_user_id"] == str(gone)


async def test_the_writer_keeps_arrival_order_and_writes_what_is_pending_when_stopped(client, app):
    writer = AuditWriter(app.state.db, max_batch=3)
    writer.start()
    for n in range(10):
        writer.submit(_event(f"ordered_{n}"))
    assert writer.running
    await writer.stop()
    assert not writer.running
    written = [r for r in await audit_rows(app) if r.event.startswith("ordered_")]
    assert [r.event for r in sorted(written, key=lambda r: r.id)] == [
        f"ordered_{n}" for n in range(10)
    ]
    assert writer.batches == 4  # 3 + 3 + 3 + 1


async def test_past_max_pending_events_are_dropped_counted_and_logged(client, app, caplog):
    writer = AuditWriter(app.state.db, max_pending=5)  # not started: nothing is written yet
    with caplog.at_level(logging.ERROR, logger="slicestar.audit"):
        for n in range(8):
            writer.submit(_event(f"pending_{n}"))
    assert writer.dropped == 3
    assert [r.message for r in caplog.records if "dropped" in r.message] == [
        "audit events dropped: 5 waiting already; 1 dropped so far (last: pending_5 "
        "[request_id=pending_5])"
    ]
    writer.start()
    await writer.stop()
    assert sorted(r.event for r in await audit_rows(app) if r.event.startswith("pending_")) == [
        f"pending_{n}" for n in range(5)
    ]


async def test_s52_an_event_after_the_writer_stopped_is_written_by_the_listener(client, app):
    await register(client, "ann@example.com")
    await app.state.audit_writer.stop()  # as at shutdown, while the emitter still runs
    response = await client.post("/tasks", data={"title": "x", "_csrf_token": "forged"})
    assert response.status_code == 403
    await wait_for_events(app, lambda r: "malicious_csrf" in names(r))
