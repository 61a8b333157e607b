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
ones, which send a held-back ``BEGIN`` (below) on its own first.
``commit`` and ``rollback`` with no transaction open make no hop at all, and ``BEGIN`` makes
none of its own: it is sent in the same call as the transaction's first statement. Nor does
the rollback that ends a read transaction (a ``BEGIN`` whose statements changed no row): in
WAL mode that only drops the reader's snapshot, with no I/O and no lock to wait for, so it
runs at once on the event loop's thread while the connection's thread is idle. A read
transaction of one query is one hop; a write of one statement two, the statement and the
commit.

Writers take turns inside the process: a ``BEGIN IMMEDIATE`` first waits for the process's
:class:`WriteGate`, which its connection holds until the transaction ends. SQLite lets one
writer in at a time anyway; without the gate, every other writer of the process polls for the
lock in SQLite's busy handler, which sleeps 1, 2, 5 … up to 100 ms between tries, so under
load a write waited far longer than the writes before it took (task creation at 64
concurrent requests: p99 of seconds). With the gate the next writer starts the moment the
previous one commits.

Between processes (several server workers on one database file) the gate's holder also takes
a :class:`WriterFileLock`: an advisory ``flock`` on ``.<database file name>.writer.lock``
beside the database (as :mod:`shared.database.serving` names its lock). It is taken on the
connection's thread just before ``BEGIN IMMEDIATE`` and dropped there as soon as ``COMMIT`` or
``ROLLBACK`` returns, not once the event loop has got round to that result. A writer of
another worker waits on that lock, which it polls every 0.2 to 2 ms, instead of in SQLite's
busy handler (task creation at 64 concurrent requests over two workers: p99 0.85 s before the
lock; 511-649 -> 649-790 requests/s in alternating runs once it was dropped on the thread).
The kernel drops the lock of a process that dies; a writer that cannot take it within the
busy timeout goes on without it, and SQLite's own lock still keeps writes apart.

Reads of a connection marked ``reads_on_loop`` (the reader pool's, see
:func:`shared.database.engine.build_engine`) make no hop at all: a ``SELECT`` outside a write
transaction runs right on the event loop's thread. The hop, not SQLite, was the cost: the
dashboard's notifications query runs in about 0.016 ms in ``sqlite3`` and cost about 0.13 ms
of CPU through one hop (both measured in one process). The app's reads are bounded, indexed
reads of one user's rows or of one page, which take SQLite tens of microseconds: shorter than
the hop they save. What must never happen on the loop's thread is a wait. A reader of a WAL
database meets a lock only in rare cases: another connection in exclusive locking mode,
recovery after a crash, the last connection cleaning up (SQLite, "Write-Ahead Logging",
"Sometimes Queries Return SQLITE_BUSY In WAL Mode"). So these connections keep a busy
timeout of 0; a read that finds the database locked (``SQLITE_BUSY``) is run again on the
connection's thread with the usual ``BUSY_TIMEOUT_MS``, as is every other statement of such
a connection. A read is only run on the loop's thread while no call of the connection is on
its way on the other one (a cancelled request leaves its call running there).

Write transactions of a connection marked ``writes_on_loop`` (the writer pool's) run on the
event loop's thread as well, once their locks are free. The first statement (with its
``BEGIN IMMEDIATE``) goes there when the process's write gate is held and the writer file lock
is taken; while another worker holds that lock, the writer tries again every 0.2 to 2 ms,
sleeping in between, so the loop serves on. The transaction's later statements and
its ``COMMIT`` follow on the loop's thread: holding SQLite's write lock, they wait for no
lock. Before, the write lock was held from the first statement on the connection's thread
until the loop had taken that result and sent the ``COMMIT``, and under a read-heavy load that
took one whole turn of a busy loop: in the 90/10 read/write mix at 64 connections over two
workers, task creations took 450-740 ms inside the server (p50) while reads took 2 ms. With
the transaction on the loop the write lock is held for the microseconds its statements take
(see the README's benchmark notes for the figures). These connections also keep a busy
timeout of 0; a statement that finds the database locked (a connection outside the app
writing) runs again on the connection's thread with ``BUSY_TIMEOUT_MS``, as does everything
while the file lock stays taken past the gate's timeout. SQLite's automatic checkpoint, which
runs inside the ``COMMIT`` that fills the WAL and took about 10 ms here, is off for them; the
driver runs a ``PASSIVE`` checkpoint on the connection's thread after every
``CHECKPOINT_EVERY_ROWS`` changed rows instead (:meth:`OneHopConnection._checkpoint_if_due`).

Pass an instance as ``module=`` to ``create_async_engine`` (see
:func:`shared.database.engine.build_engine`).
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import os
import sqlite3
import time
import weakref
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any] | None, int, int | None]

logger = logging.getLogger(__name__)

BEGIN_WRITE = "BEGIN IMMEDIATE"  # how shared.database.engine begins a writing transaction
BEGIN_READ = "BEGIN"  # … and a reading one
BUSY_TIMEOUT_MS = 5000  # how long a statement on a connection's thread waits for a lock
# A connection that commits on the event loop's thread checkpoints the WAL on its own thread
# after this many changed rows (SQLite's automatic checkpoint: every 1,000 WAL pages; a row
# changes at least one page).
CHECKPOINT_EVERY_ROWS = 1000


class WriterFileLock:
    """An exclusive advisory lock (``flock``) on ``path``, shared by every process that writes
    to one SQLite database: the same order between processes that :class:`WriteGate` keeps
    within one.

    The file is opened on first use (after any fork) and closed with this object. ``acquire``
    blocks the calling thread (a connection's own thread, never the event loop); ``release``
    returns at once. The owner of the process's :class:`WriteGate` takes it for its
    connection (the ``holder``), so one descriptor serves the whole process, and only that
    connection's end of transaction drops it: a thread that takes the lock after its request
    was cancelled still gives it back when its connection is rolled back or closed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._open_failed = False  # warned once, until the file opens
        self.holder: object | None = None

    def acquire(self, timeout: float, holder: object) -> bool:
        """Take the lock for ``holder``, polling every 0.2 ms, doubling to at most 2 ms, for at
        most ``timeout`` seconds; False when it was not free by then (or the file cannot be
        opened: the writer then goes on without it)."""
        try:
            fd = self._open()
        except OSError as error:  # e.g. a read-only folder: writes fail there anyway
            if not self._open_failed:
                logger.warning("cannot open the writer lock %s: %s", self.path, error)
            self._open_failed = True
            return False
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    logger.warning("writer lock %s not free after %.1f s", self.path, timeout)
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
            else:
                self.holder = holder
                return True

    def try_acquire(self, holder: object) -> bool | None:
        """Take the lock for ``holder`` if it is free right now, without waiting (safe on the
        event loop's thread): True when taken, False when another process holds it, ``None``
        when the file cannot be opened (the writer then goes on without it, as with
        :meth:`acquire`)."""
        try:
            fd = self._open()
        except OSError as error:
            if not self._open_failed:
                logger.warning("cannot open the writer lock %s: %s", self.path, error)
            self._open_failed = True
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.holder = holder
        return True

    def release(self, holder: object) -> None:
        """Drop the lock if ``holder`` took it (harmless otherwise)."""
        if self.holder is holder and self._fd is not None:
            self.holder = None
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._open_failed = False
            weakref.finalize(self, os.close, self._fd)
        return self._fd


def writer_lock_path(database: str, *, uri: bool = False) -> str | None:
    """Where the writer lock of SQLite database ``database`` lives (``.<file name>.writer.lock``
    in the same folder), or ``None`` for an in-memory or URI-named database."""
    if uri or not database or database == ":memory:":
        return None
    folder, name = os.path.split(database)
    return os.path.join(folder, f".{name}.writer.lock")


class WriteGate:
    """One writing transaction at a time in this process (an ``asyncio.Lock`` with an owner),
    and, with ``file_lock``, in every process writing to the same database file.

    ``enter`` waits at most ``timeout`` seconds (SQLite's ``busy_timeout``). Past that it lets
    the writer go on ungated and returns False: SQLite's own lock, not this gate, keeps writes
    apart, so a gate that some connection failed to leave can slow writes down, never block
    them for good. The file lock is taken by the owner on its connection's thread
    (:meth:`lock_file`) and dropped when that connection leaves (:meth:`leave`).
    """

    def __init__(self, timeout: float = 5.0, file_lock: WriterFileLock | None = None) -> None:
        self.timeout = timeout
        self.file_lock = file_lock
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

    def lock_file(self, owner: object) -> None:
        """On ``owner``'s connection thread: take the file lock for it, if there is one,
        waiting at most ``timeout`` seconds (then the writer goes on without it)."""
        if self.file_lock is not None:
            self.file_lock.acquire(self.timeout, owner)

    async def lock_file_on_loop(self, owner: object) -> bool:
        """On the event loop's thread, for ``owner``, which holds the gate: take the file
        lock, trying every 0.2 ms, doubling to at most 2 ms, and sleeping in between, for at
        most ``timeout`` seconds. True when the writer may go on with its transaction on the
        loop's thread (the lock is taken, or there is none to take); False when another
        process held it all that time."""
        if self.file_lock is None:
            return True
        deadline = time.monotonic() + self.timeout
        pause = 0.0002
        while (taken := self.file_lock.try_acquire(owner)) is False:
            if time.monotonic() >= deadline:
                logger.warning(
                    "writer lock %s not free after %.1f s", self.file_lock.path, self.timeout
                )
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.002)
        return taken is True or taken is None

    def leave(self, owner: object) -> None:
        """Drop the file lock and free the gate, each if ``owner`` holds it (harmless
        otherwise)."""
        try:
            if self.file_lock is not None:
                self.file_lock.release(owner)
        finally:
            if self._owner is owner:
                self._owner = None
                self._lock.release()


def _run(
    conn: sqlite3.Connection,
    operation: str,
    parameters: Any,
    many: bool,
    begin: str | None = None,
    gate: WriteGate | None = None,
    owner: object = None,
    busy_ms: int | None = None,
) -> _Outcome:
    """Execute, fetch everything, close; return what the adapter needs afterwards
    ``(description, rows or None, rowcount, lastrowid)``. A pending ``begin`` runs first, and
    before it, with ``gate`` (a ``BEGIN IMMEDIATE`` whose connection ``owner`` holds it), the
    gate's file lock is taken. With ``busy_ms`` the statement may wait that long for a lock
    (``PRAGMA busy_timeout``), and the connection's timeout is 0 again afterwards.

    Runs on the connection's thread, or on the event loop's for a read that must not wait
    (:meth:`OneHopConnection.run`)."""
    if gate is not None:
        gate.lock_file(owner)
    if busy_ms is not None:
        conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    try:
        return _execute_and_fetch(conn, operation, parameters, many, begin)
    finally:
        if busy_ms is not None:
            conn.execute("PRAGMA busy_timeout=0")


def _execute_and_fetch(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool, begin: str | None
) -> _Outcome:
    if begin is not None:
        conn.execute(begin)
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


def _end_transaction(
    conn: sqlite3.Connection, commit: bool, gate: WriteGate, owner: object
) -> None:
    """On the connection's thread: ``COMMIT`` (or ``ROLLBACK``), then, once no transaction is
    open, drop the file lock ``owner`` holds. Another process's writer waits on that lock, and
    would otherwise wait on until this event loop gets round to the result."""
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        if gate.file_lock is not None and not conn.in_transaction:
            gate.file_lock.release(owner)


def _checkpoint(conn: sqlite3.Connection) -> None:
    """On the connection's thread: a ``PASSIVE`` WAL checkpoint (copies what it can from the
    WAL into the database file without waiting for any reader or writer)."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _tracked(owner: OneHopConnection, call: int, fn: Any, *args: Any) -> Any:
    """On the connection's thread: ``fn(*args)``, then record call number ``call`` of
    ``owner`` as finished (read by :meth:`OneHopConnection._thread_idle`)."""
    try:
        return fn(*args)
    finally:
        owner._finished_calls = call


def _is_read(operation: str) -> bool:
    """Whether ``operation`` is a ``SELECT`` (SQLAlchemy compiles every query to one)."""
    return operation[:6].upper() == "SELECT"


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
        adapt = self._adapt_connection
        if operation in (BEGIN_WRITE, BEGIN_READ) and not parameters:
            await adapt.hold_begin(operation)  # sent with the first statement
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = collections.deque()
            return
        outcome = await adapt.run(operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows) if rows is not None else collections.deque()

    def nextset(self) -> None:
        """SQLite has one result set per statement."""
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        """A no-op, as in SQLite's own driver."""
        return None


class OneHopServerSideCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """The stock server-side cursor (``stream_results``), which runs its statement itself:
    a held-back ``BEGIN`` goes first."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._adapt_connection.send_pending_begin()
        return await super()._execute_async(operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._adapt_connection.send_pending_begin()
        return await super()._executemany_async(operation, seq_of_parameters)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The stock adapted connection, with :class:`OneHopCursor` as its cursor.

    ``rollback`` and ``commit`` outside a transaction make no hop: SQLite would do nothing
    (``in_transaction`` reads SQLite's autocommit flag, safe from any thread while the
    connection's thread is idle, which it is between this connection's awaited calls). The
    single-statement session lookup, which sends no ``BEGIN``, ends with such a rollback.
    ``rollback`` of a read transaction makes none either (:meth:`_reading`).
    """

    __slots__ = (
        "_checkpointed_changes",
        "_finished_calls",
        "_pending_begin",
        "_read_changes",
        "_submitted_calls",
        "reads_on_loop",
        "writes_on_loop",
    )
    _cursor_cls = OneHopCursor
    _ss_cursor_cls = OneHopServerSideCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # ``(BEGIN statement, whether it holds the write gate)`` until the first statement.
        self._pending_begin: tuple[str, bool] | None = None
        # SQLite's ``total_changes`` when a read transaction (``BEGIN``) was sent, else None.
        self._read_changes: int | None = None
        #: Run reads on the event loop's thread (module docstring); set by the engine, which
        #: also sets this connection's busy timeout to 0.
        self.reads_on_loop = False
        #: Run write transactions on the event loop's thread when their locks are free at
        #: once (module docstring); set by the engine with a busy timeout of 0.
        self.writes_on_loop = False
        # Calls handed to the connection's thread, and the last one it finished. Each has one
        # writer (this thread, that thread), so neither can lose an update.
        self._submitted_calls = 0
        self._finished_calls = 0
        # SQLite's ``total_changes`` at this connection's last checkpoint.
        self._checkpointed_changes = 0

    def _idle(self) -> bool:
        raw = self._connection._connection
        return raw is not None and not raw.in_transaction

    def _thread_idle(self) -> bool:
        """True when every call handed to the connection's thread has returned there."""
        return self._finished_calls == self._submitted_calls

    def _reading(self) -> bool:
        """True when the open transaction began with ``BEGIN`` (deferred), has changed no row
        (SQLite's ``total_changes`` as it was then) and no call is under way on the
        connection's thread: its rollback is then safe to run on the calling thread."""
        raw = self._connection._connection
        return (
            raw is not None
            and self._read_changes is not None
            and raw.total_changes == self._read_changes
            and not self._execute_mutex.locked()
            and self._thread_idle()
        )

    async def hold_begin(self, statement: str) -> None:
        """Begin a transaction with ``statement`` (``BEGIN`` or ``BEGIN IMMEDIATE``), sent
        with the transaction's first statement; a writer takes its turn at the write gate
        now. No call on the connection's thread."""
        gated = statement == BEGIN_WRITE and await self.dbapi.write_gate.enter(self)
        self._pending_begin = (statement, gated)

    def begin_transaction(self, statement: str) -> None:
        """:meth:`hold_begin` for synchronous SQLAlchemy code (the engine's ``begin``
        listener), which otherwise would send ``statement`` through a whole statement
        execution (cursor, execution context, events) only for it to be held back here."""
        if statement == BEGIN_READ:
            self._pending_begin = (statement, False)  # nothing to wait for
        else:
            await_(self.hold_begin(statement))

    async def run(self, operation: str, parameters: Any, many: bool) -> _Outcome:
        """Run one statement (:func:`_run`), a held-back ``BEGIN`` in the same call.

        On a ``reads_on_loop`` connection a ``SELECT`` outside a write transaction runs on
        the calling thread without waiting for any lock. On a ``writes_on_loop`` connection
        so does a write transaction's first statement (with its ``BEGIN IMMEDIATE``) once the
        writer file lock is taken on the loop (:meth:`WriteGate.lock_file_on_loop`), and every
        later statement of the transaction. A statement that finds the database locked, and
        every other statement, runs on the connection's thread with ``BUSY_TIMEOUT_MS``; so
        does a first statement whose file lock stayed taken past the gate's timeout, which
        then goes on without it. Elsewhere every statement runs on the connection's thread.
        """
        begin, gated = self._pending_begin or (None, False)
        self._pending_begin = None
        if begin == BEGIN_READ:
            self._read_changes = self._connection._connection.total_changes
        busy_ms = None
        file_lock = gated  # the thread takes the writer file lock before a gated BEGIN
        if self.reads_on_loop or self.writes_on_loop:
            busy_ms = BUSY_TIMEOUT_MS
            conn = self._connection._conn
            try:
                if not many and self._thread_idle():
                    if await self._loop_may_run(operation, begin, gated):
                        try:
                            return _run(conn, operation, parameters, False, begin)
                        except sqlite3.OperationalError as error:
                            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                                raise
                            if conn.in_transaction:
                                begin = None  # the BEGIN went through; the statement met a lock
                    elif self.writes_on_loop and begin == BEGIN_WRITE and gated:
                        file_lock = False  # waited the gate's timeout for it: go on without
            except BaseException:
                self._leave_if_not_begun(gated)
                raise
        return await self._run_on_thread(
            operation, parameters, many, begin, gated, busy_ms, file_lock=file_lock
        )

    async def _loop_may_run(self, operation: str, begin: str | None, gated: bool) -> bool:
        """Whether this statement may run on the event loop's thread (see :meth:`run`); for
        the first statement of a gated write transaction, first take the writer file lock on
        the loop (:meth:`WriteGate.lock_file_on_loop`)."""
        if self.reads_on_loop:
            return not gated and _is_read(operation)
        if begin == BEGIN_WRITE:
            return gated and await self.dbapi.write_gate.lock_file_on_loop(self)
        return begin is None and not self._idle()  # inside a write transaction that began

    def _leave_if_not_begun(self, gated: bool) -> None:
        """After a failed statement: if no transaction began, the next writer may go."""
        if gated and self._idle():
            self.dbapi.write_gate.leave(self)

    async def send_pending_begin(self) -> None:
        """Send a held-back ``BEGIN`` now, on its own (for a statement that does not go
        through :class:`OneHopCursor`)."""
        if self._pending_begin is not None:
            begin, gated = self._pending_begin
            self._pending_begin = None
            busy_ms = BUSY_TIMEOUT_MS if self.reads_on_loop or self.writes_on_loop else None
            await self._run_on_thread(begin, None, False, None, gated, busy_ms)

    async def _call_on_thread(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the connection's thread, counted for :meth:`_thread_idle`."""
        self._submitted_calls += 1
        return await self._connection._execute(_tracked, self, self._submitted_calls, fn, *args)

    async def _run_on_thread(
        self,
        operation: str,
        parameters: Any,
        many: bool,
        begin: str | None,
        gated: bool,
        busy_ms: int | None,
        *,
        file_lock: bool = True,
    ) -> _Outcome:
        gate = self.dbapi.write_gate
        try:
            async with self._execute_mutex:
                return await self._call_on_thread(  # type: ignore[no-any-return]
                    _run,
                    self._connection._conn,
                    operation,
                    parameters,
                    many,
                    begin,
                    gate if gated and file_lock else None,
                    self,
                    busy_ms,
                )
        except BaseException:
            self._leave_if_not_begun(gated)
            raise

    def _end(self) -> None:
        """The transaction is over: forget a BEGIN never sent, leave the write gate."""
        self._pending_begin = None
        self._read_changes = None
        self.dbapi.write_gate.leave(self)

    def rollback(self) -> None:
        """Roll back the open transaction, if there is one; leave the write gate.

        A read transaction is rolled back right here (no hop: see :meth:`_reading`), any
        other on the connection's thread.
        """
        try:
            if self._reading():
                self._connection._connection.rollback()
            elif not self._idle():
                self._end_on_thread(commit=False)
        finally:
            self._end()

    def commit(self) -> None:
        """Commit the open transaction, if there is one; leave the write gate.

        On a ``writes_on_loop`` connection the ``COMMIT`` runs on the event loop's thread (it
        waits for no lock: the transaction holds SQLite's write lock) and a checkpoint
        follows on the connection's thread when one is due (:meth:`_checkpoint_if_due`);
        elsewhere it runs on the connection's thread.
        """
        try:
            if self._idle():
                pass
            elif self.writes_on_loop and self._thread_idle():
                try:
                    _end_transaction(self._connection._conn, True, self.dbapi.write_gate, self)
                except Exception as error:
                    self._handle_exception(error)
            else:
                self._end_on_thread(commit=True)
        finally:
            self._end()
        if self.writes_on_loop:
            self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """Run a ``PASSIVE`` WAL checkpoint on the connection's thread once this connection has
        changed ``CHECKPOINT_EVERY_ROWS`` rows since its last one.

        ``writes_on_loop`` connections commit on the event loop's thread with SQLite's
        automatic checkpoint off (``PRAGMA wal_autocheckpoint=0``): that checkpoint runs
        inside the ``COMMIT`` that fills the WAL past 1,000 pages, and writing those pages
        back and syncing the file took about 9-10 ms here, too long to stall the loop. A
        ``PASSIVE`` checkpoint takes no lock a reader or writer waits for (SQLite,
        "sqlite3_wal_checkpoint_v2"); it runs after the write gate and the file lock were
        left, and a failure is logged, not raised: the commit stands.
        """
        raw = self._connection._connection
        if raw is None or raw.total_changes - self._checkpointed_changes < CHECKPOINT_EVERY_ROWS:
            return
        self._checkpointed_changes = raw.total_changes
        try:
            await_(self._call_on_thread(_checkpoint, self._connection._conn))
        except Exception:
            logger.warning("WAL checkpoint after a commit failed", exc_info=True)

    def _end_on_thread(self, *, commit: bool) -> None:
        """``COMMIT`` or ``ROLLBACK`` on the connection's thread, the file lock dropped there
        (:func:`_end_transaction`); errors as the stock adapter raises them."""
        try:
            await_(
                self._call_on_thread(
                    _end_transaction, self._connection._conn, commit, self.dbapi.write_gate, self
                )
            )
        except Exception as error:
            self._handle_exception(error)

    def close(self) -> None:
        """Close the connection (SQLite rolls back what was open); leave the write gate."""
        try:
            super().close()
        finally:
            self._end()

    def terminate(self) -> None:
        """Close without ceremony (a lost connection); leave the write gate."""
        try:
            super().terminate()
        finally:
            self._end()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The stock aiosqlite DBAPI adapter whose connections use :class:`OneHopCursor`."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.write_gate = WriteGate()

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        """Open an aiosqlite connection (its thread a daemon, as the stock adapter does); the
        first one names the database whose writer lock the gate takes."""
        if self.write_gate.file_lock is None:
            path = writer_lock_path(arg[0] if arg else kw.get("database", ""), uri=kw.get("uri"))
            if path is not None:
                self.write_gate.file_lock = WriterFileLock(path)
        creator_fn = kw.pop("async_creator_fn", None)
        if creator_fn:
            connection = creator_fn(*arg, **kw)
        else:
            connection = aiosqlite.connect(*arg, **kw)
            connection._thread.daemon = True
        return OneHopConnection(self, await_(connection))
