"""The audit trail's writer: security events written after the responses, in batches (S52, R2).

Writing each event in a write transaction of its own made a flood of refused requests (forms
posted without a CSRF token, hundreds per second) queue one writer per event for the
process's single write connection: events were lost when the pool's 5-second wait ran out,
and every other write of the worker (a user creating a task) waited behind them. One
:class:`AuditWriter` per worker process instead queues the events and writes, in one
transaction, every event that arrived while the previous batch was being written or in the
``GATHER_SECONDS`` before. That pause keeps the transactions few under a flood now that a
write transaction takes no turn of the event loop (the writer pool's transactions run on the
loop's thread, :mod:`shared.database.sqlite_driver`): without it, a flood of 400 refused
forms was written in 400 transactions, one per event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from features.audit.service import write_events
from shared.database import Database
from shared.events import SecurityEvent

logger = logging.getLogger("slicestar.audit")

MAX_BATCH = 500  # events per write transaction
MAX_PENDING = 10_000  # events waiting to be written; more are dropped (memory stays bounded)
STOP_SECONDS = 5.0  # how long shutdown waits for the pending events to be written
GATHER_SECONDS = 0.005  # how long events gather after the first one before they are written


class AuditWriter:
    """Writes queued :class:`SecurityEvent` objects to ``audit_events`` from one task.

    :meth:`submit` queues an event and returns at once. The task writes the queue in arrival
    order, at most ``max_batch`` events per transaction (:func:`write_events`). At most
    ``max_pending`` events wait: past that an event is dropped, counted in ``dropped`` and
    logged (the first time, then every 1,000th), so a flood cannot grow the worker's memory
    without end. A batch that fails for another reason than a deleted account is logged
    (event names and request ids) and dropped. Create and :meth:`start` it inside a running
    event loop; :meth:`stop` writes what is pending.
    """

    def __init__(
        self, db: Database, *, max_batch: int = MAX_BATCH, max_pending: int = MAX_PENDING
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.dropped = 0
        self.batches = 0
        self._pending: collections.deque[SecurityEvent] = collections.deque()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` is called."""
        return self._task is not None and not self._stopping

    def start(self) -> None:
        """Start the writing task."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    def submit(self, event: SecurityEvent) -> None:
        """Queue ``event`` to be written (or drop it when ``max_pending`` events wait)."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.error(
                    "audit events dropped: %d waiting already; %d dropped so far (last: %s "
                    "[request_id=%s])",
                    len(self._pending),
                    self.dropped,
                    event.name,
                    event.request_id,
                )
            return
        self._pending.append(event)
        self._arrived.set()

    async def stop(self, seconds: float = STOP_SECONDS) -> None:
        """Write the pending events (for at most ``seconds``), then end the task."""
        self._stopping = True
        self._arrived.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), seconds)
        except TimeoutError:
            self._task.cancel()
            logger.error("audit writer stopped with %d events not written", len(self._pending))

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            if not self._stopping:
                await asyncio.sleep(GATHER_SECONDS)  # let the events of a burst join in
            self._arrived.clear()
            while self._pending:
                size = min(len(self._pending), self.max_batch)
                await self._write([self._pending.popleft() for _ in range(size)])
            if self._stopping:
                return

    async def _write(self, batch: list[SecurityEvent]) -> None:
        try:
            await write_events(self.db, batch)
            self.batches += 1
        except Exception:
            shown = ", ".join(f"{e.name} [request_id={e.request_id}]" for e in batch[:20])
            logger.exception(
                "%d audit events not recorded: %s%s", len(batch), shown, " …" * (len(batch) > 20)
            )


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run one :class:`AuditWriter` per worker process as ``app.state.audit_writer``."""
    writer = AuditWriter(app.state.db)
    app.state.audit_writer = writer
    writer.start()
    try:
        yield
    finally:
        await writer.stop()
