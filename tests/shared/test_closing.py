"""close_to_completion: a request's session is closed to the end, cancelled or not, and a
close that never waits takes no task of its own."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from features.users.models import User
from shared.database import Database, closing
from shared.database.closing import close_to_completion


class FakeSession:
    """A session whose close waits for ``gate`` (when given) and may fail."""

    def __init__(self, gate: asyncio.Event | None = None, error: Exception | None = None):
        self.gate = gate
        self.error = error
        self.closed = False

    async def close(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.closed = True


@pytest.fixture
def tasks_created(monkeypatch):
    created: list[asyncio.Task] = []
    real = asyncio.create_task

    def counting(coro, **kwargs):
        task = real(coro, **kwargs)
        created.append(task)
        return task

    monkeypatch.setattr(closing.asyncio, "create_task", counting)
    return created


async def test_a_close_that_never_waits_runs_in_the_callers_task(tasks_created):
    session = FakeSession()
    await close_to_completion(session)
    assert session.closed and tasks_created == []


async def test_a_close_that_waits_finishes_in_a_task_of_its_own(tasks_created):
    gate = asyncio.Event()
    session = FakeSession(gate)
    closer = asyncio.create_task(close_to_completion(session))
    await asyncio.sleep(0)
    assert len([t for t in tasks_created if t is not closer]) == 1 and not session.closed
    gate.set()
    await closer
    assert session.closed


async def test_a_cancelled_caller_waits_for_the_close_then_is_cancelled():
    gate = asyncio.Event()
    session = FakeSession(gate)
    closer = asyncio.create_task(close_to_completion(session))
    await asyncio.sleep(0)
    closer.cancel()  # the request is cancelled while its session closes
    await asyncio.sleep(0.01)
    assert not closer.done() and not session.closed
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert session.closed


@pytest.mark.parametrize("waits", [False, True])
async def test_errors_of_the_close_propagate(waits):
    gate = asyncio.Event()
    gate.set()
    session = FakeSession(gate if waits else None, error=RuntimeError("close failed"))
    with pytest.raises(RuntimeError, match="close failed"):
        await close_to_completion(session)


async def test_a_reader_session_goes_back_to_its_pool(database_url):
    db = Database(database_url)
    try:
        pool = db.engine.pool
        session = db.reader()
        assert await session.get(User, uuid.UUID(int=1)) is None
        assert pool.checkedout() == 1
        await close_to_completion(session)
        assert pool.checkedout() == 0 and not session.in_transaction()
    finally:
        await db.dispose()
