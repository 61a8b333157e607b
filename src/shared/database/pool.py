"""A connection pool that serves waiting requests in the order they came (first in, first out).

SQLAlchemy's asyncio pool keeps its idle connections in an ``asyncio.Queue``. When a
connection comes back, that queue wakes the longest waiter but does not hand it the
connection: until the waiter runs, any request that asks first takes it, and a waiter that
finds the queue empty again goes to the back of the line. Under load (64 concurrent requests
over two workers, four connections each) newcomers kept overtaking, and the dashboard's p99
was three to four times its median.

:class:`FairQueue` hands a returned connection straight to the longest waiter, and a request
only takes an idle connection when nobody is waiting. :class:`FairAsyncQueuePool` is
SQLAlchemy's ``AsyncAdaptedQueuePool`` with that queue (pass it as ``poolclass=``). Measured
with the benchmark (set-up B, SQLite, dashboard at c=64, alternating runs): p99 292-336 ->
122-195 ms at the same requests per second within the noise (640-840 either way).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Generic, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import Empty, Full

T = TypeVar("T")


class FairQueue(Generic[T]):
    """The pool's idle connections and, when there are none, the requests waiting for one.

    The interface is SQLAlchemy's ``QueueCommon`` as its ``QueuePool`` uses it: ``get`` raises
    ``sqlalchemy.util.queue.Empty`` when nothing came within ``timeout`` seconds, ``put``
    raises ``Full`` when ``maxsize`` connections are already idle (the pool then closes the
    one returned). ``get`` must run inside SQLAlchemy's greenlet (it awaits with ``await_``).
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._idle: collections.deque[T] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[T]] = collections.deque()

    def empty(self) -> bool:
        """True when no connection is idle."""
        return not self._idle

    def full(self) -> bool:
        """True when ``maxsize`` (> 0) connections are idle."""
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        """How many connections are idle."""
        return len(self._idle)

    def put_nowait(self, item: T) -> None:
        """Hand ``item`` to the longest waiter, or keep it idle. Raises ``Full``."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a waiter that gave up is skipped
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._idle.append(item)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """:meth:`put_nowait` (a pool never waits to give a connection back)."""
        self.put_nowait(item)

    def get_nowait(self) -> T:
        """An idle connection, newest or oldest as ``use_lifo`` says. Raises ``Empty``."""
        if not self._idle:
            raise Empty()
        return self._idle.pop() if self.use_lifo else self._idle.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """An idle connection, or (with ``block``) the next one returned, waiting behind
        everyone who asked before, at most ``timeout`` seconds. Raises ``Empty``."""
        if self._idle or not block:
            return self.get_nowait()  # connections are idle only while nobody waits
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await_(_wait(waiter, timeout))
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())  # handed over as this waiter gave up
            else:
                waiter.cancel()
            if isinstance(error, TimeoutError):
                raise Empty() from error
            raise


async def _wait(waiter: asyncio.Future[T], seconds: float | None) -> T:
    async with asyncio.timeout(seconds):
        return await waiter


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, serving waiters first in, first out (:class:`FairQueue`)."""

    _queue_class: Any = FairQueue
