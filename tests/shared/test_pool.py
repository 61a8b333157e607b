"""The connection pool serves waiting requests first in, first out (shared.database.pool)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Empty, Full

from shared.database.pool import FairAsyncQueuePool, FairQueue


async def _get(queue: FairQueue[str], timeout: float | None = 5.0) -> str:
    return await greenlet_spawn(queue.get, True, timeout)


async def test_a_returned_connection_goes_to_the_longest_waiter_not_to_a_newcomer():
    queue: FairQueue[str] = FairQueue(maxsize=4)
    first = asyncio.create_task(_get(queue))
    second = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)  # both wait, first in line first
    queue.put_nowait("conn-1")
    # A newcomer asking now, before the first waiter has run, finds nothing idle.
    with pytest.raises(Empty):
        queue.get_nowait()
    newcomer = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put_nowait("conn-2")
    queue.put_nowait("conn-3")
    assert [await first, await second, await newcomer] == ["conn-1", "conn-2", "conn-3"]
    assert queue.empty()


async def test_a_waiter_that_times_out_raises_empty_and_takes_nothing_later():
    queue: FairQueue[str] = FairQueue(maxsize=4)
    with pytest.raises(Empty):
        await _get(queue, timeout=0.01)
    queue.put_nowait("conn")  # nobody waits any more: it stays idle
    assert queue.qsize() == 1
    assert await _get(queue) == "conn"


async def test_a_waiter_cancelled_as_it_was_handed_a_connection_gives_it_back():
    queue: FairQueue[str] = FairQueue(maxsize=4)
    waiter = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put_nowait("conn")  # handed over ...
    waiter.cancel()  # ... and cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.qsize() == 1 and queue.get_nowait() == "conn"


def test_idle_connections_are_capped_at_maxsize():
    queue: FairQueue[str] = FairQueue(maxsize=1)
    queue.put_nowait("conn-1")
    assert queue.full()
    with pytest.raises(Full):
        queue.put_nowait("conn-2")
    assert queue.get_nowait() == "conn-1"
    with pytest.raises(Empty):
        queue.get(block=False)


async def test_the_app_engines_use_the_fair_pool(client, app):
    for engine in app.state.db.engines:
        assert isinstance(engine.sync_engine.pool, FairAsyncQueuePool)
