"""The per-process hub: fan-out to local subscribers, no query without subscribers, late
commits inside the look-back window, no duplicates, clean close (issue 7, "Across processes")."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from features.notifications.live import CLOSE, Hub, uuid7_floor
from shared.database import new_id
from tests.features.notifications.conftest import add_user
from tests.features.notifications.support import make


@pytest.fixture
async def two_users(db, bob) -> tuple[uuid.UUID, uuid.UUID]:
    return await add_user(db, "ann@example.com"), bob


def test_uuid7_floor_orders_below_every_id_of_that_millisecond():
    made = new_id()
    ms = made.int >> 80
    assert uuid7_floor(ms) < made < uuid7_floor(ms + 1)
    assert str(uuid7_floor(ms)) < str(made) < str(uuid7_floor(ms + 1))  # text order on SQLite
    assert uuid7_floor(ms).version == 7


async def test_fan_out_goes_to_every_tab_of_the_owner_only(db, two_users):
    ann, bob = two_users
    hub = Hub(db)
    async with hub.subscribe(ann) as tab1, hub.subscribe(ann) as tab2, hub.subscribe(bob) as other:
        [note] = await make(db, ann, 1, title="Hello")
        assert await hub.poll_once() == 2
        for tab in (tab1, tab2):
            item = tab.get_nowait()
            assert (item.id, item.title, item.unread) == (note.id, "Hello", 1)
        assert other.empty()
        # The next poll sees the same row inside the look-back window but delivers nothing.
        assert await hub.poll_once() == 0
        assert tab1.empty() and tab2.empty()
    assert hub.subscriber_count == 0 and hub.queries == 2


async def test_a_row_committed_late_with_an_older_id_is_still_delivered(db, two_users):
    ann, _ = two_users
    now = [10_000_000_000_000]
    hub = Hub(db, lag_seconds=5, clock_ms=lambda: now[0])
    async with hub.subscribe(ann) as tab:
        [first] = await make(db, ann, 1, title="first")
        now[0] = (first.id.int >> 80) + 1000  # one second after the first id
        assert await hub.poll_once() == 1
        # A row whose id is 3 s older than "now" (generated before, committed after the poll).
        from features.notifications.models import Notification

        async with db.writer() as session:
            late_id = uuid.UUID(int=((now[0] - 3000) << 80) | (0x7 << 76) | (0b10 << 62) | 1)
            session.add(
                Notification(id=late_id, user_id=ann, type="info", title="late", message="m")
            )
            await session.commit()
        assert await hub.poll_once() == 1
        assert [tab.get_nowait().title for _ in range(2)] == ["first", "late"]


async def test_no_query_while_nobody_listens_and_at_most_one_per_interval(db, two_users):
    ann, _ = two_users
    hub = Hub(db, poll_seconds=0.2)
    hub.start()
    try:
        await asyncio.sleep(0.5)
        assert hub.queries == 0
        async with hub.subscribe(ann):
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.sleep(1.0)
            elapsed = loop.time() - started
            assert 1 <= hub.queries <= int(elapsed / 0.2) + 1
    finally:
        await hub.stop()


async def test_stop_closes_every_subscription(db, two_users):
    ann, _ = two_users
    hub = Hub(db)
    hub.start()
    async with hub.subscribe(ann) as tab:
        await hub.stop()
        assert tab.get_nowait() is CLOSE
    async with hub.subscribe(ann) as late:
        assert late.get_nowait() is CLOSE
