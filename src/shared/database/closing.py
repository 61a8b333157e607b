"""Closing a request's session to the end, without a task of its own when nothing waits.

``async with session:`` closes an ``AsyncSession`` through SQLAlchemy's
``_run_to_completion``: the close runs in a new task that the caller awaits through
``asyncio.shield``, so that a request cancelled meanwhile (a client gone) cannot abandon the
close halfway and leave a connection outside its pool. That costs a task and two or three more
turns of the event loop on every request: served on one core, closing the reader session
without them took the dashboard from 1.91 to 1.73 ms of CPU per request (``bench.duel``).

Most closes never wait: on SQLite a read transaction is rolled back in place and the
connection goes back to the pool in the same call. :func:`close_to_completion` therefore runs
the close in the caller's task up to its first wait, and only a close that does wait (a
rollback on the connection's thread, a PostgreSQL round trip) goes on in a shielded task of
its own, exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


class _Resume:
    """An awaitable that goes on with ``coro``, which is suspended on ``waiting`` (what it
    yielded to the event loop: a future, or ``None`` for a bare turn of the loop)."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, Any]:
        coro, waiting = self.coro, self.waiting
        while True:
            try:
                try:
                    yield waiting  # the task running this waits for it, then resumes here
                except BaseException as error:  # thrown into that task: on to coro
                    waiting = coro.throw(error)
                else:
                    waiting = coro.send(None)
            except StopIteration as done:
                return done.value


async def _finish(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    return await _Resume(coro, waiting)


async def close_to_completion(session: AsyncSession) -> None:
    """``await session.close()``, which a cancellation of the calling task cannot cut short.

    The close runs in the calling task until it first has to wait. If it never does, that is
    all. Otherwise the rest runs in a task of its own that the caller awaits through
    ``asyncio.shield``; a cancellation that arrives meanwhile is raised once the close has
    finished (as SQLAlchemy's ``async with session`` does). Errors of the close propagate.
    """
    coro = session.close()
    try:
        waiting = coro.send(None)
    except StopIteration:
        return
    task = asyncio.create_task(_finish(coro, waiting))
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if task.done():
                raise
            cancelled = error
        else:
            break
    if cancelled is not None:
        raise cancelled
