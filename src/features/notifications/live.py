"""Live push across worker processes: one poller per process fans new rows out to its streams.

Every worker process runs one :class:`Hub`. While at least one browser tab of that process is
subscribed (``/notifications/stream``), the hub asks the database once per ``poll_seconds``
(default 1 s) for rows newer than a short look-back window, however many tabs are connected,
and puts each new row on the queues of its owner's tabs. A notification created in any process
(or by the CLI) therefore reaches every tab within about a second, on SQLite (one file, many
processes) and on PostgreSQL alike. With no subscribers the hub sends no query at all.

With ``REDIS_URL`` set, only one process of the deployment polls (it holds a short Redis
lease) and publishes new rows over Redis pub/sub to every process: one query per second for the
whole deployment. PostgreSQL uses the same poller (no LISTEN/NOTIFY): it needs no extra
connection per worker and also sees rows written by other tools.

Why a look-back window: ids are UUIDv7 (time-ordered) but generated before the commit, so a
row may become visible slightly after a newer id. Each poll re-reads the last ``lag_seconds``
of ids (a primary-key range scan over a handful of rows) and skips ids it already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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

    def to_wire(self) -> dict[str, Any]:
        """The JSON form sent between processes (with the owner)."""
        return {**self.as_json(), "user_id": str(self.user_id)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> LiveNotification:
        """Inverse of :meth:`to_wire`."""
        return cls(
            id=uuid.UUID(data["id"]),
            user_id=uuid.UUID(data["user_id"]),
            type=data["type"],
            title=data["title"],
            message=data["message"],
            link=data["link"],
            created_at=datetime.fromisoformat(data["created_at"].replace("Z", "+00:00")),
            unread=int(data["unread"]),
        )

    def as_json(self) -> dict[str, Any]:
        """The event's ``data`` for the browser: id, type, title, message, link, ``created_at``
        (ISO 8601 UTC with ``Z``) and ``unread``."""
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

    Without ``relay`` every process with subscribers polls the database itself. With a
    :class:`RedisRelay` only one process of the whole deployment (the lease holder) polls and
    publishes new rows; every process receives them over Redis pub/sub. ``queries`` counts
    this process's poller queries (for monitoring and the soak test).
    """

    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float = 1.0,
        lag_seconds: float = 5.0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        relay: RedisRelay | None = None,
    ) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.lag_ms = int(lag_seconds * 1000)
        self.clock_ms = clock_ms
        self.relay = relay
        self.subscribers: dict[uuid.UUID, set[asyncio.Queue[Any]]] = {}
        self.queries = 0
        self.peak_subscribers = 0
        self.closing = False
        self._fetched: dict[uuid.UUID, int] = {}  # ids this process read from the database
        self._delivered: dict[uuid.UUID, int] = {}  # ids this process put on its queues
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def window_floor(self) -> uuid.UUID:
        """Ids above this one may still be delivered by a coming poll: twice the look-back
        window before now (ids come from other processes' clocks too)."""
        return uuid7_floor(self.clock_ms() - 2 * self.lag_ms)

    @property
    def subscriber_count(self) -> int:
        """How many streams (open tabs) this process serves now."""
        return sum(len(queues) for queues in self.subscribers.values())

    def start(self) -> None:
        """Start the poller task (it sleeps while nobody is subscribed), and the relay's
        listener when there is one."""
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._run(), name="notifications-poller"))
            if self.relay is not None:
                self._tasks.append(
                    asyncio.create_task(self.relay.listen(self), name="notifications-relay")
                )

    def close_streams(self) -> None:
        """Tell every open stream to end now (shutdown); new subscriptions end at once too."""
        self.closing = True
        for queues in self.subscribers.values():
            for queue in queues:
                _offer(queue, CLOSE)
        self._wake.set()

    async def stop(self) -> None:
        """Close every stream, stop the poller (and the relay)."""
        self.close_streams()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.relay is not None:
            await self.relay.close()

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
                if self.relay is None:
                    await self.poll_once()
                elif await self.relay.lead():
                    await self.relay.publish(await self.fetch_new())
            except Exception:  # a busy database or a restarting Redis must not kill the poller
                logger.warning("notification poll failed", exc_info=True)
            # At most one query per poll_seconds, however long the query took.
            await asyncio.sleep(max(0.0, self.poll_seconds - (loop.time() - started)))

    async def fetch_new(self) -> list[LiveNotification]:
        """Ask the database once for recent rows; return those this process has not read yet."""
        now_ms = self.clock_ms()
        floor = uuid7_floor(now_ms - self.lag_ms)
        async with self.db.reader() as session:
            self.queries += 1
            rows = await NotificationRepository(session).newer_than(floor, BATCH_LIMIT)
        items = []
        for row in rows:
            if row[0] in self._fetched:
                continue
            self._fetched[row[0]] = now_ms
            items.append(
                LiveNotification(
                    id=row[0],
                    user_id=row[1],
                    type=str(getattr(row[2], "value", row[2])),
                    title=row[3],
                    message=row[4],
                    link=row[5],
                    created_at=row[6],
                    unread=int(row[7]),
                )
            )
        _forget(self._fetched, now_ms - 2 * self.lag_ms)
        return items

    def deliver(self, item: LiveNotification) -> int:
        """Put ``item`` on its owner's local queues once; returns how many queues got it."""
        if item.id in self._delivered:
            return 0
        now_ms = self.clock_ms()
        self._delivered[item.id] = now_ms
        _forget(self._delivered, now_ms - 2 * self.lag_ms)
        queues = self.subscribers.get(item.user_id, ())
        for queue in queues:
            _offer(queue, item)
        return len(queues)

    async def poll_once(self) -> int:
        """Read new rows once and deliver them locally; returns how many queues got an item."""
        return sum(self.deliver(item) for item in await self.fetch_new())


class RedisRelay:
    """Redis pub/sub between worker processes (used when ``REDIS_URL`` is set).

    A short lease (``SET NX PX``, renewed by its holder each poll) picks the one process that
    polls the database; it publishes each new row on ``channel``. Every process listens and
    delivers to its own subscribers, skipping ids it has delivered already (a lease changing
    hands can publish a row twice). Lease expiry (3 s) is shorter than the look-back window
    (5 s), so a new holder still finds the rows the old one had not published.
    """

    _RENEW = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    )

    def __init__(self, url: str, *, prefix: str = "slicestar:notifications", lease_ms: int = 3000):
        import redis.asyncio as redis  # only when REDIS_URL is set

        self.client = redis.from_url(url)
        self.channel = f"{prefix}:new"
        self.lease_key = f"{prefix}:poller"
        self.lease_ms = lease_ms
        self.me = uuid.uuid4().hex

    async def lead(self) -> bool:
        """True while this process holds the polling lease (taking it when it is free)."""
        if await self.client.set(self.lease_key, self.me, nx=True, px=self.lease_ms):
            return True
        return bool(await self.client.eval(self._RENEW, 1, self.lease_key, self.me, self.lease_ms))

    async def publish(self, items: list[LiveNotification]) -> None:
        """Send each item to every process."""
        for item in items:
            await self.client.publish(self.channel, json.dumps(item.to_wire()))

    async def listen(self, hub: Hub) -> None:
        """Deliver what any process publishes to ``hub``'s subscribers; reconnects on errors."""
        while not hub.closing:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    while not hub.closing:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None and message["type"] == "message":
                            hub.deliver(LiveNotification.from_wire(json.loads(message["data"])))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("notification relay lost Redis; retrying", exc_info=True)
                await asyncio.sleep(1.0)

    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('del', KEYS[1]) else return 0 end"
    )

    async def close(self) -> None:
        """Give the lease up (if held) so another process takes over at once; disconnect."""
        with contextlib.suppress(Exception):
            await self.client.eval(self._RELEASE, 1, self.lease_key, self.me)
        await self.client.aclose()


class SeenIds:
    """The notification ids one stream has sent, or that its page already showed.

    A stream skips an item from the hub whose id is here, and nothing else: a row with an
    *older* id that commits after a newer one was sent is still delivered (UUIDv7 ids are
    made before the commit; the hub's look-back exists to catch such rows). Ids older than
    :meth:`Hub.window_floor` can never be delivered again, so they are forgotten, and a
    stream that stays open for minutes keeps only a few seconds' worth.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._ids: set[uuid.UUID] = set()

    def __contains__(self, notification_id: object) -> bool:
        return notification_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, notification_id: uuid.UUID) -> None:
        """Remember ``notification_id``; forget ids that left the look-back window."""
        self._ids.add(notification_id)
        floor = self.hub.window_floor()
        self._ids = {seen for seen in self._ids if seen > floor}


def _forget(seen: dict[uuid.UUID, int], horizon_ms: int) -> None:
    for key in [k for k, at in seen.items() if at < horizon_ms]:
        del seen[key]


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
    """Run one :class:`Hub` per worker process as ``app.state.notification_hub``; with
    ``REDIS_URL`` the hubs share one poller through a :class:`RedisRelay`."""
    settings = app.state.settings
    relay = RedisRelay(settings.redis_url) if settings.redis_url else None
    hub = Hub(app.state.db, poll_seconds=settings.notification_poll_seconds, relay=relay)
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
