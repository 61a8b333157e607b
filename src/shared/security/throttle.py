"""Attempt throttling shared by every worker process (SECURITY.md S9, S29, S35; ASVS 5.0 V6.3.1).

Two mechanisms, both keyed by a *budget name* (``"login"``, ``"confirm_password"``,
``"two_factor"``, ``"password_reset"``, ``"verification_resend"`` …) and a caller-chosen key:

- a fixed-window counter: at most ``limit`` attempts per ``window`` seconds;
- an account back-off: after ``free`` consecutive failures every further attempt waits
  ``2 ** (failures - free)`` seconds (capped at 15 minutes) after the last failure; a success
  resets it. There is never a permanent lock-out.

API for handlers (all take the app's ``state``; times are whole seconds)::

    retry = await throttle.hit(state, "login", key)     # count this attempt, refuse if over
    await throttle.reset(state, "login", key)           # forget the key (e.g. on success)
    retry = await throttle.check(state, "login", key)   # would the next attempt be refused?
    retry = await throttle.backoff_acquire(state, "login_account", key)  # before the work
    streak = await throttle.backoff_fail(state, "login_account", key)    # after a failure
    await throttle.backoff_reset(state, "login_account", key)            # after a success
    retry = await throttle.hit_then_backoff(state, ("login", key), ("login_account", email))

``hit_then_backoff`` is ``hit`` and then ``backoff_acquire`` in one store transaction (what a
sign-in attempt counts). ``hit``/``check``/``backoff_acquire``/``hit_then_backoff`` return
``None`` when the attempt may proceed, otherwise the number of seconds to wait (≥ 1, for a
``Retry-After`` header).

Count *before* the expensive work (the Argon2 verify, the code check), never after it: ``hit``
and ``backoff_acquire`` are single atomic operations on the store, so of any number of
concurrent attempts exactly ``limit`` per window get through and the rest are refused (429),
whereas "check, then verify, then count the failure" lets a burst of concurrent requests
all pass the check before any failure is counted. A success then calls ``reset`` /
``backoff_reset``. Keys should be normalised by the caller (e.g. lower-cased email + client
IP); they are stored as SHA-256 digests, so no email or IP lands in the counter store.

Counters live in the database (``throttle_counters``, one conditional UPSERT per attempt:
``INSERT … ON CONFLICT (key) DO UPDATE`` on SQLite and PostgreSQL), or in Redis when
``REDIS_URL`` is set, so every worker process sees the same counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Column, Integer, String, Table, bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import clock
from shared.database import Database, ISOTimestamp, metadata

throttle_counters = Table(
    "throttle_counters",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", ISOTimestamp(), nullable=False, index=True),
)


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` attempts per ``window`` seconds."""

    limit: int
    window: int


BACKOFF_FREE = 5  # consecutive failures before the back-off starts
BACKOFF_CAP = 15 * 60  # seconds
BACKOFF_MEMORY = 24 * 3600  # a failure streak is forgotten after a day

BUDGETS: dict[str, Budget] = {
    "login": Budget(5, 60),  # per (normalised email, client IP), S9
    "confirm_password": Budget(5, 60),  # per user, S20
    "two_factor": Budget(5, 60),  # per account, across its pending logins, S29
    "two_factor_lock_notice": Budget(1, BACKOFF_MEMORY),  # one notice per failure streak, S29
    "password_reset": Budget(1, 60),  # per address, S35
    "verification_resend": Budget(1, 60),  # per address, S35
}


@dataclass(frozen=True, slots=True)
class Bucket:
    """A counter's value and the instant (aware UTC) it resets."""

    count: int
    expires_at: datetime


class ThrottleStore(Protocol):
    """Where counters live. ``key`` is an opaque string of at most 64 characters."""

    async def hit(self, key: str, window: int, now: datetime) -> Bucket:
        """Add one to ``key`` atomically; a missing or expired counter restarts at 1 for
        ``window`` seconds from ``now``. Returns the counter after the increment."""
        ...

    async def peek(self, key: str, now: datetime) -> Bucket | None:
        """The live counter of ``key``, or ``None`` when missing or expired."""
        ...

    async def put(self, key: str, count: int, expires_at: datetime) -> None:
        """Set ``key`` to ``count`` until ``expires_at``."""
        ...

    async def clear(self, *keys: str) -> None:
        """Forget every one of ``keys`` (in one operation)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[ThrottleStore]:
        """A store whose operations inside the ``async with`` block make one transaction: all
        of them count, or none (the database store: one write transaction instead of one per
        operation). The Redis store yields itself; each of its operations stays atomic."""
        ...


def _counter_statements(insert: Any) -> dict[str, Any]:
    """The store's statements, built once per store with bind parameters (``k``, ``keys``,
    ``fresh``, ``now``, ``count``): building and cache-keying a conditional UPSERT on every
    attempt cost more CPU than running it. ``insert`` is the dialect's ``insert``."""
    t = throttle_counters
    at = ISOTimestamp()
    hit = insert(t).values(key=bindparam("k"), count=1, expires_at=bindparam("fresh", type_=at))
    expired = t.c.expires_at <= bindparam("now", type_=at)
    put = insert(t).values(
        key=bindparam("k"), count=bindparam("count"), expires_at=bindparam("fresh", type_=at)
    )
    return {
        "hit": hit.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={
                "count": case((expired, 1), else_=t.c.count + 1),
                "expires_at": case((expired, hit.excluded.expires_at), else_=t.c.expires_at),
            },
        ).returning(t.c.count, t.c.expires_at),
        "peek": select(t.c.count, t.c.expires_at).where(t.c.key == bindparam("k")),
        "put": put.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={"count": put.excluded.count, "expires_at": put.excluded.expires_at},
        ),
        "clear": delete(t).where(t.c.key.in_(bindparam("keys", expanding=True))),
        "prune": delete(t).where(t.c.expires_at <= bindparam("now", type_=at)),
    }


class _CounterRows:
    """The counter operations on one open connection (inside its caller's transaction)."""

    def __init__(self, conn: AsyncConnection, sql: dict[str, Any]) -> None:
        self.conn = conn
        self.sql = sql

    async def hit(self, key: str, window: int, now: datetime) -> Bucket:
        fresh = now + timedelta(seconds=window)
        result = await self.conn.execute(self.sql["hit"], {"k": key, "fresh": fresh, "now": now})
        row = result.one()
        return Bucket(int(row.count), row.expires_at)

    async def peek(self, key: str, now: datetime) -> Bucket | None:
        row = (await self.conn.execute(self.sql["peek"], {"k": key})).first()
        if row is None or row.expires_at <= now:
            return None
        return Bucket(int(row.count), row.expires_at)

    async def put(self, key: str, count: int, expires_at: datetime) -> None:
        await self.conn.execute(self.sql["put"], {"k": key, "count": count, "fresh": expires_at})

    async def clear(self, *keys: str) -> None:
        await self.conn.execute(self.sql["clear"], {"keys": list(keys)})

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_CounterRows]:
        yield self  # already inside one


class DatabaseThrottleStore:
    """Counters in the ``throttle_counters`` table (shared by every process on the database).

    Each operation is its own transaction; :meth:`transaction` groups several in one.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = _counter_statements(sqlite.insert if db.is_sqlite else postgresql.insert)

    async def hit(self, key: str, window: int, now: datetime) -> Bucket:
        async with self.transaction() as rows:
            return await rows.hit(key, window, now)

    async def peek(self, key: str, now: datetime) -> Bucket | None:
        async with self.db.single_read_engine.connect() as conn:  # one SELECT
            bucket = await _CounterRows(conn, self.sql).peek(key, now)
            await conn.rollback()
        return bucket

    async def put(self, key: str, count: int, expires_at: datetime) -> None:
        async with self.transaction() as rows:
            await rows.put(key, count, expires_at)

    async def clear(self, *keys: str) -> None:
        async with self.transaction() as rows:
            await rows.clear(*keys)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_CounterRows]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed when the block
        ends and rolled back if it raises."""
        async with self.db.write_engine.begin() as conn:
            yield _CounterRows(conn, self.sql)

    async def prune(self, now: datetime) -> int:
        """Delete expired counters; returns how many."""
        async with self.db.write_engine.begin() as conn:
            result = await conn.execute(self.sql["prune"], {"now": now})
        return result.rowcount or 0


class RedisThrottleStore:
    """Counters in Redis (``REDIS_URL``): ``SET NX PX`` + ``INCR`` + ``PTTL`` in one transaction.

    Expiry uses Redis's own clock; ``expires_at`` is reported relative to ``now``.
    """

    def __init__(self, url: str, prefix: str = "slicestar:throttle:") -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.prefix = prefix

    async def hit(self, key: str, window: int, now: datetime) -> Bucket:
        name = self.prefix + key
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(name, 0, px=window * 1000, nx=True)
            pipe.incr(name)
            pipe.pttl(name)
            _, count, ttl = await pipe.execute()
        return Bucket(int(count), now + timedelta(milliseconds=max(int(ttl), 0)))

    async def peek(self, key: str, now: datetime) -> Bucket | None:
        name = self.prefix + key
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(name)
            pipe.pttl(name)
            value, ttl = await pipe.execute()
        if value is None or int(ttl) <= 0:
            return None
        return Bucket(int(value), now + timedelta(milliseconds=int(ttl)))

    async def put(self, key: str, count: int, expires_at: datetime) -> None:
        ms = int((expires_at - clock.now()).total_seconds() * 1000)
        if ms > 0:
            await self.redis.set(self.prefix + key, count, px=ms)

    async def clear(self, *keys: str) -> None:
        await self.redis.delete(*(self.prefix + key for key in keys))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[RedisThrottleStore]:
        yield self  # every operation is one MULTI/EXEC already


async def prune(state: Any) -> int:
    """Delete expired counters from the database store (Redis expires keys itself)."""
    store = store_for(state)
    if isinstance(store, DatabaseThrottleStore):
        return await store.prune(clock.now())
    return 0


def store_for(state: Any) -> ThrottleStore:
    """The app's store (created on first use and kept on ``state``): Redis when
    ``settings.redis_url`` is set, else the database."""
    store = state.get("throttle_store")
    if store is None:
        url = state.settings.redis_url
        store = RedisThrottleStore(url) if url else DatabaseThrottleStore(state.db)
        state.throttle_store = store
    return store


def _key(kind: str, name: str, key: str) -> str:
    return hashlib.sha256(f"{kind}\0{name}\0{key}".encode()).hexdigest()


def _wait(expires_at: datetime, now: datetime) -> int:
    return max(1, math.ceil((expires_at - now).total_seconds()))


def _budget(name: str, limit: int | None, window: int | None) -> Budget:
    base = BUDGETS.get(name, Budget(5, 60))
    return Budget(limit if limit is not None else base.limit, window or base.window)


async def check(
    state: Any, name: str, key: str, *, limit: int | None = None, window: int | None = None
) -> int | None:
    """Seconds to wait if budget ``name`` is used up for ``key``, else ``None`` (counts nothing)."""
    budget = _budget(name, limit, window)
    now = clock.now()
    bucket = await store_for(state).peek(_key("w", name, key), now)
    if bucket is None or bucket.count < budget.limit:
        return None
    return _wait(bucket.expires_at, now)


async def hit(
    state: Any, name: str, key: str, *, limit: int | None = None, window: int | None = None
) -> int | None:
    """Count one attempt against budget ``name`` for ``key`` (one atomic increment).

    Returns ``None`` while within ``limit`` attempts per ``window`` seconds (defaults from
    :data:`BUDGETS`), else the seconds until the window resets (refuse with 429 and
    ``Retry-After``). Call it before the expensive work, so concurrent attempts cannot all
    slip through; a refused attempt is counted too (the window does not move).
    """
    return await _hit(store_for(state), name, key, _budget(name, limit, window))


async def _hit(store: ThrottleStore, name: str, key: str, budget: Budget) -> int | None:
    now = clock.now()
    bucket = await store.hit(_key("w", name, key), budget.window, now)
    return None if bucket.count <= budget.limit else _wait(bucket.expires_at, now)


async def reset(state: Any, name: str, key: str) -> None:
    """Forget the attempts counted for ``key`` under budget ``name``."""
    await store_for(state).clear(_key("w", name, key))


def backoff_delay(failures: int) -> int:
    """Seconds an account waits after ``failures`` consecutive failures: 0 up to
    :data:`BACKOFF_FREE`, then 1, 2, 4 … seconds, capped at :data:`BACKOFF_CAP`."""
    if failures < BACKOFF_FREE:
        return 0
    return min(2 ** min(failures - BACKOFF_FREE, 20), BACKOFF_CAP)


async def backoff_check(state: Any, name: str, key: str) -> int | None:
    """Seconds ``key`` must still wait after its last failure, or ``None`` (counts nothing)."""
    now = clock.now()
    lock = await store_for(state).peek(_key("l", name, key), now)
    return _wait(lock.expires_at, now) if lock is not None else None


async def backoff_acquire(state: Any, name: str, key: str) -> int | None:
    """Count one attempt in ``key``'s failure streak *before* the expensive check; returns
    ``None`` (go ahead) or the seconds to wait.

    While a wait from :func:`backoff_fail` runs, the attempt is refused without being counted.
    Otherwise the attempt takes the next place in the streak with one atomic increment, as if
    it were going to fail; the first :data:`BACKOFF_FREE` places are free, every later one must
    also take the single *slot* (a counter that starts at 1 when absent): of concurrent
    attempts past the free ones exactly one proceeds per wait, the others are refused. A
    refused racer keeps its place in the streak (concurrent bursts make the wait grow faster,
    never slower). Call :func:`backoff_fail` after a failure, :func:`backoff_reset` after a
    success.
    """
    return await _backoff_acquire(store_for(state), name, key)


async def _backoff_acquire(store: ThrottleStore, name: str, key: str) -> int | None:
    now = clock.now()
    lock = await store.peek(_key("l", name, key), now)
    if lock is not None:
        return _wait(lock.expires_at, now)
    streak = await store.hit(_key("b", name, key), BACKOFF_MEMORY, now)
    delay = backoff_delay(streak.count - 1)  # the attempts before this one failed (or run)
    if not delay:
        return None
    slot = await store.hit(_key("l", name, key), delay, now)
    return None if slot.count == 1 else _wait(slot.expires_at, now)


async def hit_then_backoff(
    state: Any, budget: tuple[str, str], backoff: tuple[str, str]
) -> int | None:
    """:func:`hit` of ``budget`` (a ``(name, key)`` pair) and, when that lets the attempt
    through, :func:`backoff_acquire` of ``backoff``: how a sign-in or two-factor attempt is
    counted (S9, S29), in one store transaction.

    Returns ``None`` (go ahead) or the seconds to wait. On the database store this is one
    write transaction of up to four statements instead of two write transactions and a read:
    the cost of every sign-in, which all workers make in turn.
    """
    name, key = budget
    async with store_for(state).transaction() as store:
        retry = await _hit(store, name, key, _budget(name, None, None))
        if retry is None:
            retry = await _backoff_acquire(store, *backoff)
    return retry


async def backoff_fail(state: Any, name: str, key: str) -> int:
    """Start the wait after a failed attempt that :func:`backoff_acquire` let through; returns
    the streak length (consecutive attempts since the last success, this one included)."""
    store = store_for(state)
    now = clock.now()
    streak = await store.peek(_key("b", name, key), now)
    count = streak.count if streak is not None else 1
    delay = backoff_delay(count)
    if delay:
        await store.put(_key("l", name, key), count, now + timedelta(seconds=delay))
    return count


async def backoff_reset(state: Any, name: str, key: str) -> None:
    """End ``key``'s failure streak (call on success)."""
    await store_for(state).clear(_key("b", name, key), _key("l", name, key))


async def reset_all(
    state: Any,
    *,
    budgets: tuple[tuple[str, str], ...] = (),
    backoffs: tuple[tuple[str, str], ...] = (),
) -> None:
    """:func:`reset` of every ``(name, key)`` in ``budgets`` and :func:`backoff_reset` of every
    ``(name, key)`` in ``backoffs``, in one store operation (one transaction on the database
    store): what a success clears, at the cost of one reset."""
    keys = [_key("w", name, key) for name, key in budgets]
    for name, key in backoffs:
        keys += [_key("b", name, key), _key("l", name, key)]
    if keys:
        await store_for(state).clear(*keys)
