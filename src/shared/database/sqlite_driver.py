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

Pass an instance as ``module=`` to ``create_async_engine`` (see
:func:`shared.database.engine.build_engine`).
"""

from __future__ import annotations

import collections
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
        async with self._adapt_connection._execute_mutex:
            outcome = await connection._execute(_run, connection._conn, operation, parameters, many)
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
        """Roll back the open transaction, if there is one."""
        if not self._idle():
            super().rollback()

    def commit(self) -> None:
        """Commit the open transaction, if there is one."""
        if not self._idle():
            super().commit()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The stock aiosqlite DBAPI adapter whose connections use :class:`OneHopCursor`."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        """Open an aiosqlite connection (its thread a daemon, as the stock adapter does)."""
        creator_fn = kw.pop("async_creator_fn", None)
        if creator_fn:
            connection = creator_fn(*arg, **kw)
        else:
            connection = aiosqlite.connect(*arg, **kw)
            connection._thread.daemon = True
        return OneHopConnection(self, await_(connection))
