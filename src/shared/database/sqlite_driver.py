"""The aiosqlite driver with one thread hop per statement (DESIGN.md §3 cost model).

aiosqlite runs every SQLite call on its connection's own thread and hands the result back to
the event loop. SQLAlchemy's adapter makes four such hops for one SELECT (open a cursor,
execute, fetch every row, close the cursor) and three for a statement without rows; each hop
wakes the event loop through its self-pipe, which costs more CPU than the query itself.

:class:`OneHopDBAPI` is the same adapter whose cursor does all of that in ONE call on the
connection's thread: it executes the statement, fetches every row (as the stock adapter does:
its cursors are buffered), records ``description``, ``rowcount`` and ``lastrowid`` and closes
the SQLite cursor. Results, errors and transactions are unchanged; only the number of
round trips between the threads drops. Server-side cursors (``stream_results``) are the stock
ones.
``commit`` and ``rollback`` with no transaction open make no hop at all.

Writers take turns inside the process: a ``BEGIN IMMEDIATE`` first waits for the process's
:class:`WriteGate`, which its connection holds until the transaction ends. SQLite lets one
writer in at a time anyway; without the gate, every other writer of the process polls for the
lock in SQLite's busy handler, which sleeps 1, 2, 5 … up to 100 ms between tries, so under
load a write waited far longer than the writes before it took (task creation at 64
concurrent requests: p99 of seconds). With the gate the next writer starts the moment the
previous one commits; only writers of other processes still meet the busy handler.

Pass an instance as ``module=`` to ``create_async_engine`` (see
:func:`shared.database.engine.build_engine`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any] | None, int, int | None]

logger = logging.getLogger(__name__)

BEGIN_WRITE = "BEGIN IMMEDIATE"  # how shared.database.engine begins a writing transaction


class WriteGate:
    """One writing transaction at a time in this process (an ``asyncio.Lock`` with an owner).

    ``enter`` waits at most ``timeout`` seconds (SQLite's ``busy_timeout``). Past that it lets
    the writer go on ungated and returns False: SQLite's own lock, not this gate, keeps writes
    apart, so a gate that some connection failed to leave can slow writes down, never block
    them for good.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._owner: object | None = None

    async def enter(self, owner: object) -> bool:
        """Wait for the gate and hold it for ``owner``; False when it gave up waiting."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._lock.acquire()
        except TimeoutError:
            logger.warning("write gate not free after %.1f s: writing ungated", self.timeout)
            return False
        self._owner = owner
        return True

    def leave(self, owner: object) -> None:
        """Free the gate if ``owner`` holds it (harmless otherwise)."""
        if self._owner is owner:
            self._owner = None
            self._lock.release()


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: execute, fetch everything, close; return what the adapter
    needs afterwards ``(description, rows or None, rowcount, lastrowid)``."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered DBAPI cursor whose ``execute`` is one call on the connection's thread.

    It holds no SQLite cursor between calls, so creating and closing it cost no hop.
    """

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing to close on the driver's thread

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # The stock constructor opens an aiosqlite cursor (a hop); this one opens nothing.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        """The description of the last statement's result (``None`` without rows)."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (SQLite's ``cursor.rowcount``)."""
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:  # type: ignore[override]
        """The rowid of the last inserted row (SQLite's ``cursor.lastrowid``)."""
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        """``fetchmany``'s default size, 1 as in DBAPI."""
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # rows are already buffered: the size of a fetch is irrelevant

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        """Drop the buffered rows (the SQLite cursor was closed after ``execute``)."""
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        return await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection = self._connection
        adapt = self._adapt_connection
        gated = operation == BEGIN_WRITE and await adapt.dbapi.write_gate.enter(adapt)
        try:
            async with adapt._execute_mutex:
                outcome = await connection._execute(
                    _run, connection._conn, operation, parameters, many
                )
        except BaseException:
            if gated:  # no transaction began: the next writer may go
                adapt.dbapi.write_gate.leave(adapt)
            raise
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows) if rows is not None else collections.deque()

    def nextset(self) -> None:
        """SQLite has one result set per statement."""
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        """A no-op, as in SQLite's own driver."""
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The stock adapted connection, with :class:`OneHopCursor` as its cursor.

    ``rollback`` and ``commit`` outside a transaction make no hop: SQLite would do nothing
    (``in_transaction`` reads SQLite's autocommit flag, safe from any thread while the
    connection's thread is idle, which it is between this connection's awaited calls). The
    single-statement session lookup, which sends no ``BEGIN``, ends with such a rollback.
    """

    __slots__ = ()
    _cursor_cls = OneHopCursor

    def _idle(self) -> bool:
        raw = self._connection._connection
        return raw is not None and not raw.in_transaction

    def rollback(self) -> None:
        """Roll back the open transaction, if there is one; leave the write gate."""
        try:
            if not self._idle():
                super().rollback()
        finally:
            self.dbapi.write_gate.leave(self)

    def commit(self) -> None:
        """Commit the open transaction, if there is one; leave the write gate."""
        try:
            if not self._idle():
                super().commit()
        finally:
            self.dbapi.write_gate.leave(self)

    def close(self) -> None:
        """Close the connection (SQLite rolls back what was open); leave the write gate."""
        try:
            super().close()
        finally:
            self.dbapi.write_gate.leave(self)

    def terminate(self) -> None:
        """Close without ceremony (a lost connection); leave the write gate."""
        try:
            super().terminate()
        finally:
            self.dbapi.write_gate.leave(self)


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The stock aiosqlite DBAPI adapter whose connections use :class:`OneHopCursor`."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.write_gate = WriteGate()

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        """Open an aiosqlite connection (its thread a daemon, as the stock adapter does)."""
        creator_fn = kw.pop("async_creator_fn", None)
        if creator_fn:
            connection = creator_fn(*arg, **kw)
        else:
            connection = aiosqlite.connect(*arg, **kw)
            connection._thread.daemon = True
        return OneHopConnection(self, await_(connection))
