"""The per-process hub: fan-out to local subscribers, no query without subscribers, late
commits inside the look-back window, no duplicates, clean close (delivery across processes)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from features.notifications.live import CLOSE, Hub, RedisRelay, SeenIds, uuid7_floor
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


async def wait_until(predicate, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_with_redis_one_process_polls_and_every_process_delivers(db, two_users, redis_url):
    ann, bob = two_users
    hubs = [
        Hub(db, poll_seconds=0.2, relay=RedisRelay(redis_url, prefix=f"t{uuid.uuid4().hex}"))
        for _ in range(2)
    ]
    hubs[1].relay.lease_key = hubs[0].relay.lease_key  # the same deployment
    hubs[1].relay.channel = hubs[0].relay.channel
    for hub in hubs:
        hub.start()
    try:
        async with (
            hubs[0].subscribe(ann) as on_first,
            hubs[1].subscribe(ann) as on_second,
            hubs[1].subscribe(bob) as bobs,
        ):
            await asyncio.sleep(0.5)  # both relays subscribed, one lease holder
            [note] = await make(db, ann, 1, title="Via Redis")
            await wait_until(lambda: not on_first.empty() and not on_second.empty())
            for queue in (on_first, on_second):
                item = queue.get_nowait()
                assert (item.id, item.title, item.unread, item.user_id) == (
                    note.id,
                    "Via Redis",
                    1,
                    ann,
                )
            assert bobs.empty()
            # Exactly one of the two processes queried the database.
            assert sorted(hub.queries > 0 for hub in hubs) == [False, True]

            # The lease holder goes away: the other takes over and still delivers.
            leader, other = (hubs[0], hubs[1]) if hubs[0].queries else (hubs[1], hubs[0])
            await leader.stop()
            await make(db, ann, 1, title="After hand-over")
            remaining = on_second if other is hubs[1] else on_first
            await wait_until(lambda: not remaining.empty(), timeout=5)
            got = [remaining.get_nowait() for _ in range(remaining.qsize())]
            assert [i.title for i in got if i is not CLOSE] == ["After hand-over"]
            assert other.queries > 0
    finally:
        for hub in hubs:
            await hub.stop()


def test_a_stream_remembers_sent_ids_only_while_the_hub_could_deliver_them_again(db):
    now = [10_000_000_000_000]
    hub = Hub(db, lag_seconds=5, clock_ms=lambda: now[0])
    seen = SeenIds(hub)

    def made_at(ms: int) -> uuid.UUID:  # an id made at ``ms`` (above that ms's floor)
        return uuid.UUID(int=uuid7_floor(ms).int + 1)

    first = made_at(now[0] - 1000)
    seen.add(first)
    assert first in seen
    now[0] += 9_000  # still inside twice the look-back window (10 s)
    second = made_at(now[0])
    seen.add(second)
    assert first in seen and second in seen
    now[0] += 2_000  # `first` left the window: no poll can deliver it again
    seen.add(made_at(now[0]))
    assert first not in seen and second in seen and len(seen) == 2
