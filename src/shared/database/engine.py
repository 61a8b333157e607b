"""The async engine, its SQLite connection setup, and the session factories (DESIGN.md §3).

On SQLite every new connection gets WAL, ``foreign_keys=ON``, ``busy_timeout=5000`` and
``synchronous=NORMAL`` (SECURITY.md R1), and a 256 KiB page cache; each process keeps fixed
pools of 4 connections for reads and 1 for writes. Transactions that may write begin with
``BEGIN IMMEDIATE`` so two writers queue instead of failing with SQLITE_BUSY_SNAPSHOT (R2):
within a process at the driver's write gate, across processes at its writer file lock, and
behind anything else on the busy timeout (:mod:`shared.database.sqlite_driver`); read-only
transactions begin with a plain ``BEGIN``. The reader pool's SELECTs, and the writer pool's
transactions once their locks are free, run on the event loop's thread without waiting for a
lock; a statement that finds one is run again on the connection's thread, where it waits up
to the busy timeout (:mod:`shared.database.sqlite_driver`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.database.pool import FairAsyncQueuePool
from shared.database.sqlite_driver import (
    BEGIN_READ,
    BEGIN_WRITE,
    BUSY_TIMEOUT_MS,
    OneHopConnection,
    OneHopDBAPI,
)

logger = logging.getLogger(__name__)

# Page cache per connection, KiB. SQLite's default is 2,000 KiB; with WAL a connection drops
# its whole cache whenever another connection has committed since its last read, so under
# writes a large cache is mostly refilled from the OS page cache anyway, while each pooled
# connection keeps the full amount resident. Measured (benchmark soak, 2 workers, 30k requests
# of the 90/10 mix): steady RSS per worker 114 -> 106 MiB at 512 KiB; throughput unchanged
# within noise.
SQLITE_CACHE_KIB = 256
# Connections per process. Every SQLite call runs on its connection's own thread, writers
# take turns (R2) and the GIL serialises the rest, so more connections add threads, memory
# and contention but no throughput. Measured against one pool of 8 + 8 overflow (benchmark,
# 2 workers, with the cache above): 4 readers + 1 writer gave a steady RSS of about 100
# instead of 108 MiB per worker and equal or more requests/s at 16 and 64 concurrent
# requests. Writers have their own pool: a writer waiting for its turn waits for that
# connection and holds none of the readers', so pages keep reading while logins queue writes
# (one shared pool of 4 let queued writers take every connection: the dashboard's p99 rose
# 4-5x during a login burst instead of 2x). No overflow: a fixed set, so no connection is
# opened and closed again and again under load.
SQLITE_POOL_SIZE = 4
SQLITE_WRITE_POOL_SIZE = 1  # SQLite lets one transaction write at a time: writers queue here
SQLITE_WRITE_POOL_TIMEOUT = 5.0  # seconds a writer waits for the connection before a 503
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}",  # negative: KiB, not pages
)
BEGIN_MODE = "slicestar_begin"  # execution option: "immediate" (writes), "none" (one read)
# PostgreSQL: a pooled connection idle for longer than this is pinged before it is handed out.
# SQLAlchemy's pool_pre_ping pings on every checkout, and asyncpg's ping is three round trips
# (BEGIN, an empty query, ROLLBACK), so a signed-in page (two checkouts) made six round trips
# more than its own statements: pinging only after idle took the dashboard from 5.1-6.2 to
# 3.8-4.6 ms of CPU per page in process. A connection used moments ago answered moments ago;
# one that sat idle (a server restart, a firewall dropping quiet connections) is checked as
# before, and one that breaks while busy is caught like any lost connection: its error
# invalidates the pool, so the next checkouts connect afresh.
POSTGRES_PING_AFTER_IDLE = 10.0  # seconds
# PostgreSQL: connections per process, a fixed set (Settings.database_pool_size). With
# SQLAlchemy's usual overflow (10 kept + 10 more under load), every connection beyond the ten
# was closed when it came back while others were still busy, and a new one was opened for
# the next burst: a new server process, asyncpg's set-up and a cold prepared-statement cache
# each time. Measured (benchmark set-up B, c=64, 2 workers, 5 s runs, fresh seed each): 10 + 10
# opened 359-491 connections per run of task creates and 121 per run of dashboards; a fixed
# 10 opened none after the first run, and task create went 445-463 -> 867-871 req/s (p99
# 291-316 -> 163-170 ms), the dashboard 634 -> 706 req/s. A fixed 20 was within noise of 10
# (899-935 req/s, p99 176-258 ms) with twice the server processes.
POSTGRES_POOL_SIZE = 10
_IDLE_SINCE = "slicestar_idle_since"  # key in a pooled connection's info: last checkin time


def _execute(dbapi_connection: Any, statements: tuple[str, ...]) -> None:
    """Run ``statements`` (PRAGMAs) on a new DBAPI connection, in order."""
    cursor = dbapi_connection.cursor()
    try:
        for statement in statements:
            cursor.execute(statement)
    finally:
        cursor.close()


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Driver autocommit off: SQLAlchemy's ``begin`` listener below emits BEGIN itself.
    dbapi_connection.isolation_level = None
    _execute(dbapi_connection, SQLITE_PRAGMAS)


def _reads_on_loop(dbapi_connection: Any, _record: Any) -> None:
    """A ``connect`` listener: this connection's reads run on the event loop's thread and
    never wait for a lock there (:mod:`shared.database.sqlite_driver`)."""
    _execute(dbapi_connection, ("PRAGMA busy_timeout=0",))
    dbapi_connection.reads_on_loop = True


def _writes_on_loop(dbapi_connection: Any, _record: Any) -> None:
    """A ``connect`` listener: this connection's write transactions run on the event loop's
    thread once their locks are free, and never wait for a lock there; it checkpoints the WAL
    on its own thread instead of inside ``COMMIT`` (:mod:`shared.database.sqlite_driver`)."""
    _execute(dbapi_connection, ("PRAGMA busy_timeout=0", "PRAGMA wal_autocheckpoint=0"))
    dbapi_connection.writes_on_loop = True


def _on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get(BEGIN_MODE)
    if mode == "none":  # a single statement: SQLite runs it as its own atomic transaction
        return
    statement = BEGIN_WRITE if mode == "immediate" else BEGIN_READ
    dbapi_connection = conn.connection.dbapi_connection
    if isinstance(dbapi_connection, OneHopConnection):
        # Straight to the driver, which holds BEGIN back until the first statement anyway.
        dbapi_connection.begin_transaction(statement)
    else:
        conn.exec_driver_sql(statement)


def _on_error(context: Any) -> None:
    """Treat "attempt to write a readonly database" as a lost connection (SECURITY.md R11).

    SQLite decides read-only or read-write when a connection opens and keeps it; marking the
    error a disconnect makes SQLAlchemy discard the pool, so once the file (or mount) is
    writable again the next connections can write: the app recovers without a restart.
    """
    if "readonly database" in str(context.original_exception):
        context.is_disconnect = True
        # End the transaction first: the failed statement is still referenced by the
        # exception, so closing alone would leave a "zombie" connection holding a read lock
        # (which would stall the shutdown checkpoint for the busy timeout).
        connection = context.connection
        dbapi_connection = connection.connection.dbapi_connection if connection else None
        if dbapi_connection is not None:
            with contextlib.suppress(Exception):
                dbapi_connection.rollback()
        context.invalidate_pool_on_disconnect = False


def _size_cap(max_size_mb: int) -> Any:
    """A ``connect`` listener capping the file at ``max_size_mb`` MiB (``PRAGMA max_page_count``).

    A write that would grow the file beyond the cap fails with SQLITE_FULL ("database or disk
    is full"), exactly as on a full disk: the transaction rolls back and the app answers 503
    (SECURITY.md R10). Freed pages are reused, so deleting rows makes room again.
    """

    def cap(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA page_size")
            page_size = cursor.fetchone()[0]
            pages = max(1, max_size_mb * 1024 * 1024 // page_size)
            cursor.execute(f"PRAGMA max_page_count={int(pages)}")
        finally:
            cursor.close()

    return cap


def build_engine(
    url: str,
    *,
    max_size_mb: int = 0,
    pool_size: int | None = None,
    reads_on_loop: bool = False,
    writes_on_loop: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """Create the async engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).

    Every pool serves waiting requests first in, first out
    (:class:`shared.database.pool.FairAsyncQueuePool`) and is a fixed set of ``pool_size``
    connections (default ``SQLITE_POOL_SIZE`` or ``POSTGRES_POOL_SIZE``), opened as needed
    and then kept: no overflow, so none is closed and opened again under load, and a request
    that finds them all busy waits its turn (``pool_timeout``, default 30 s, then
    ``sqlalchemy.exc.TimeoutError``, which the app answers with 503). For SQLite the
    connection listeners above are installed (a request must never hold two connections at
    once, see :func:`shared.database.dependencies.request_reader`); ``max_size_mb`` > 0 caps
    the database file (SQLite only). With ``reads_on_loop`` (SQLite only; the reader pool)
    SELECTs outside a write transaction run on the event loop's thread with no thread hop
    and never wait for a lock there; with ``writes_on_loop`` (SQLite only; the writer pool)
    so do ``BEGIN IMMEDIATE`` transactions once their locks are free, which commit there
    and checkpoint the WAL on the connection's thread. Pass the ``module`` of another SQLite
    engine to share its write gate. Call this inside the app's lifespan (after any fork),
    never at import (SECURITY.md R5).
    """
    if url.startswith("sqlite"):
        # One thread hop per statement instead of four (shared.database.sqlite_driver).
        kwargs.setdefault("module", OneHopDBAPI())
        engine = create_async_engine(
            url,
            poolclass=FairAsyncQueuePool,
            pool_size=pool_size or SQLITE_POOL_SIZE,
            max_overflow=0,
            **kwargs,
        )
        event.listen(engine.sync_engine, "connect", _on_connect)
        if max_size_mb > 0:
            event.listen(engine.sync_engine, "connect", _size_cap(max_size_mb))
        if reads_on_loop:
            event.listen(engine.sync_engine, "connect", _reads_on_loop)
        if writes_on_loop:
            event.listen(engine.sync_engine, "connect", _writes_on_loop)
        event.listen(engine.sync_engine, "begin", _on_begin)
        event.listen(engine.sync_engine, "handle_error", _on_error)
        return engine
    engine = create_async_engine(
        url,
        poolclass=FairAsyncQueuePool,
        pool_size=pool_size or POSTGRES_POOL_SIZE,
        max_overflow=0,
        **kwargs,
    )
    ping_after_idle(engine, POSTGRES_PING_AFTER_IDLE)
    return engine


def ping_after_idle(engine: AsyncEngine, seconds: float) -> None:
    """Ping a pooled connection of ``engine`` at checkout when it was last checked in more than
    ``seconds`` ago (monotonic clock); a fresh connection is not pinged.

    A connection that does not answer is dropped, with every other connection pooled before
    it (a server restart leaves them all dead), and the checkout goes on with a new one: the
    pool's protocol for a ``checkout`` listener that raises ``InvalidatePoolError``, a
    ``DisconnectionError`` (SQLAlchemy docs, "Dealing with Disconnects": custom pessimistic
    ping). The pool clears a connection's ``info`` when it reconnects, so a new connection
    carries no stamp and is not pinged.
    """
    dialect = engine.sync_engine.dialect

    def stamp_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: this connection is not to be trusted
            raise InvalidatePoolError(
                f"pooled connection idle for {seconds:g} s+ failed a ping"
            ) from exc

    event.listen(engine.sync_engine, "checkin", stamp_checkin)
    event.listen(engine.sync_engine, "checkout", ping_if_idle)


class Database:
    """The engines and the two session factories: ``reader`` (BEGIN) and ``writer`` (BEGIN IMMEDIATE).

    ``engine`` serves reads; on SQLite ``write_engine`` has a pool of its own
    (``SQLITE_WRITE_POOL_SIZE`` connections, sharing the driver and so the write gate), on
    PostgreSQL it is ``engine`` with the same pool. ``engines`` lists each distinct engine once.
    ``single_read_engine`` is for a connection that runs exactly one SELECT (the session
    lookup on every request): the statement is its own transaction. On SQLite it sends no
    ``BEGIN``, which saves three driver round trips; on PostgreSQL its connections are in
    ``AUTOCOMMIT`` while checked out, which saves the ``BEGIN`` and ``ROLLBACK`` round trips (a
    lone SELECT sees one snapshot either way).

    ``reader`` sessions read a consistent snapshot on SQLite (one deferred ``BEGIN`` for all
    their SELECTs, so a page never mixes two commits). On PostgreSQL they run in
    ``AUTOCOMMIT`` as well: at READ COMMITTED, PostgreSQL's default, every statement takes a
    new snapshot even inside a transaction (PostgreSQL docs, "Transaction Isolation", Read
    Committed), so wrapping a page's SELECTs in ``BEGIN`` … ``ROLLBACK`` bought nothing but
    two round trips. Reader sessions never write; writes go through ``writer`` sessions,
    which run READ COMMITTED transactions on PostgreSQL.

    ``pool_size`` is the PostgreSQL pool's fixed number of connections per process (default
    ``POSTGRES_POOL_SIZE``); SQLite's pools are sized above and ignore it.
    """

    def __init__(self, url: str, *, max_size_mb: int = 0, pool_size: int | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = build_engine(
            url,
            max_size_mb=max_size_mb,
            pool_size=None if self.is_sqlite else pool_size,
            reads_on_loop=self.is_sqlite,
        )
        writes = self.engine
        if self.is_sqlite:
            writes = build_engine(
                url,
                max_size_mb=max_size_mb,
                pool_size=SQLITE_WRITE_POOL_SIZE,
                pool_timeout=SQLITE_WRITE_POOL_TIMEOUT,
                writes_on_loop=True,
                module=self.engine.dialect.dbapi,
            )
        self.engines: tuple[AsyncEngine, ...] = tuple(dict.fromkeys((self.engine, writes)))
        self.write_engine = writes.execution_options(**{BEGIN_MODE: "immediate"})
        if self.is_sqlite:
            reads = self.engine
            self.single_read_engine = self.engine.execution_options(**{BEGIN_MODE: "none"})
        else:
            reads = self.single_read_engine = self.engine.execution_options(
                isolation_level="AUTOCOMMIT"
            )
        self.reader = async_sessionmaker(reads, expire_on_commit=False)
        self.writer = async_sessionmaker(self.write_engine, expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A writer session for work outside a request (CLI, background jobs, listeners).

        Commits when the block ends without an error, rolls back otherwise.
        """
        async with self.writer() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection; on SQLite first fold the WAL back into the main file."""
        if self.is_sqlite:
            try:
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    await conn.rollback()
            except Exception:  # the checkpoint is an optimisation; disposal must still happen
                logger.warning("WAL checkpoint on shutdown failed", exc_info=True)
        for engine in self.engines:
            await engine.dispose()
