"""Live push across worker processes: one poller per process fans new rows out to its streams.

Every worker process runs one :class:`Hub`. While at least one browser tab of that process is
subscribed (``/notifications/stream``), the hub asks the database once per ``poll_seconds``
(default 1 s) for rows newer than a short look-back window, however many tabs are connected,
and puts each new row on the queues of its owner's tabs. A notification created in any process
(or by the CLI) therefore reaches every tab within about a second, on SQLite (one file, many
processes) and on PostgreSQL alike. With no subscribers the hub sends no query at all.

Why a look-back window: ids are UUIDv7 (time-ordered) but generated before the commit, so a
row may become visible slightly after a newer id. Each poll re-reads the last ``lag_seconds``
of ids (a primary-key range scan over a handful of rows) and skips ids it already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from features.notifications.repository import NotificationRepository
from shared.database import Database

logger = logging.getLogger(__name__)

QUEUE_SIZE = 100
BATCH_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class LiveNotification:
    """What a stream sends for one new notification; ``unread`` is the owner's count then."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: str
    title: str
    message: str
    link: str | None
    created_at: datetime
    unread: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "title": self.title,
            "message": self.message,
            "link": self.link,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "unread": self.unread,
        }


CLOSE = object()  # put on every queue when the process shuts down


def uuid7_floor(unix_ms: int) -> uuid.UUID:
    """The smallest UUIDv7 with timestamp ``unix_ms`` (RFC 9562 §5.7): ids ``>`` it are newer."""
    return uuid.UUID(int=(unix_ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | (0b10 << 62))


class Hub:
    """Per-process fan-out of new notifications to local subscribers (asyncio queues).

    ``queries`` counts the poller's database queries (for monitoring and the soak test).
    """

    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float = 1.0,
        lag_seconds: float = 5.0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.lag_ms = int(lag_seconds * 1000)
        self.clock_ms = clock_ms
        self.subscribers: dict[uuid.UUID, set[asyncio.Queue[Any]]] = {}
        self.queries = 0
        self.peak_subscribers = 0
        self.closing = False
        self._seen: dict[uuid.UUID, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscriber_count(self) -> int:
        return sum(len(queues) for queues in self.subscribers.values())

    def start(self) -> None:
        """Start the poller task (it sleeps while nobody is subscribed)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notifications-poller")

    def close_streams(self) -> None:
        """Tell every open stream to end now (shutdown); new subscriptions end at once too."""
        self.closing = True
        for queues in self.subscribers.values():
            for queue in queues:
                _offer(queue, CLOSE)
        self._wake.set()

    async def stop(self) -> None:
        """Close every stream and stop the poller."""
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[Any]]:
        """A queue that receives :class:`LiveNotification` items for ``user_id`` (or
        :data:`CLOSE` on shutdown) until the block ends."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.subscribers.setdefault(user_id, set()).add(queue)
        self.peak_subscribers = max(self.peak_subscribers, self.subscriber_count)
        if self.closing:
            _offer(queue, CLOSE)
        self._wake.set()
        try:
            yield queue
        finally:
            queues = self.subscribers.get(user_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self.subscribers[user_id]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closing:
            if not self.subscribers:
                self._wake.clear()
                await self._wake.wait()
                continue
            started = loop.time()
            try:
                await self.poll_once()
            except Exception:  # a busy or restarting database must not kill the poller
                logger.warning("notification poll failed", exc_info=True)
            # At most one query per poll_seconds, however long the query took.
            await asyncio.sleep(max(0.0, self.poll_seconds - (loop.time() - started)))

    async def poll_once(self) -> int:
        """Ask the database for recent rows once and deliver the new ones; returns how many."""
        now_ms = self.clock_ms()
        floor = uuid7_floor(now_ms - self.lag_ms)
        async with self.db.reader() as session:
            self.queries += 1
            rows = await NotificationRepository(session).newer_than(floor, BATCH_LIMIT)
        delivered = 0
        for row in rows:
            if row[0] in self._seen:
                continue
            self._seen[row[0]] = now_ms
            item = LiveNotification(
                id=row[0],
                user_id=row[1],
                type=str(row[2].value if hasattr(row[2], "value") else row[2]),
                title=row[3],
                message=row[4],
                link=row[5],
                created_at=row[6],
                unread=int(row[7]),
            )
            for queue in self.subscribers.get(item.user_id, ()):
                _offer(queue, item)
                delivered += 1
        horizon = now_ms - 2 * self.lag_ms
        for key in [k for k, seen_at in self._seen.items() if seen_at < horizon]:
            del self._seen[key]
        return delivered


def _offer(queue: asyncio.Queue[Any], item: object) -> None:
    """Put without waiting; a tab that stopped reading loses items (its count resyncs later)."""
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(item)


@contextlib.contextmanager
def close_streams_on_signal(hub: Hub) -> Any:
    """While active, SIGTERM/SIGINT first end every stream, then reach the server's own handler.

    Servers wait for open responses before running the app's shutdown, and an event stream
    never ends by itself; without this a graceful stop would hang until its timeout.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(hub.close_streams)
        previous[signum](signum, frame)

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not allowed here: leave it alone
            current = signal.getsignal(signum)
            if callable(current):  # only chain onto a server's handler, never replace a default
                signal.signal(signum, handler)
                previous[signum] = current
    try:
        yield
    finally:
        for signum, old in previous.items():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signum) is handler:
                    signal.signal(signum, old)


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run one :class:`Hub` per worker process as ``app.state.notification_hub``."""
    settings = app.state.settings
    hub = Hub(app.state.db, poll_seconds=settings.notification_poll_seconds)
    app.state.notification_hub = hub
    started = time.monotonic()
    hub.start()
    with close_streams_on_signal(hub):
        try:
            yield
        finally:
            await hub.stop()
            logger.info(
                "notification poller stopped: %d queries in %.1f s, at most %d streams",
                hub.queries,
                time.monotonic() - started,
                hub.peak_subscribers,
            )
