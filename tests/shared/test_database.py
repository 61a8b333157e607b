"""The data layer: pragmas (R1), concurrent writers (R2), stored formats, types and helpers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from features.tasks.models import Task, TaskStatus
from features.tasks.repository import TaskRepository
from features.users.models import User
from shared.database import Database, escape_like, new_id, sqlite_driver
from shared.database import engine as engine_module
from shared.database.dependencies import request_reader
from shared.database.engine import SQLITE_CACHE_KIB, SQLITE_POOL_SIZE, SQLITE_WRITE_POOL_SIZE
from shared.database.sqlite_driver import (
    WriteGate,
    WriterFileLock,
    _end_transaction,
    _run,
    _tracked,
    writer_lock_path,
)
from shared.database.types import format_timestamp, parse_timestamp
from tests.support import DEFAULT_PASSWORD, csrf, post_form, register, verify_email

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def sqlite_path(settings) -> str:
    return settings.database_url.split("///", 1)[1]


async def test_r1_pragmas_read_back_through_the_apps_engine(client, app, settings):
    if not settings.is_sqlite:
        pytest.skip("SQLite pragmas")
    async with app.state.db.engine.connect() as conn:
        values = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
        await conn.rollback()
    assert values == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "synchronous": 1,
    }


async def test_sqlite_connections_keep_a_small_page_cache_in_a_fixed_pool(client, app, settings):
    if not settings.is_sqlite:
        pytest.skip("SQLite pool and page cache")
    async with app.state.db.engine.connect() as conn:
        cache = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar()
        await conn.rollback()
    assert cache == -SQLITE_CACHE_KIB == -256  # KiB per connection, not SQLite's 2,000
    db = app.state.db
    readers, writers = (engine.pool for engine in db.engines)
    assert (readers.size(), readers._max_overflow) == (SQLITE_POOL_SIZE, 0) == (4, 0)
    assert (writers.size(), writers._max_overflow) == (SQLITE_WRITE_POOL_SIZE, 0) == (1, 0)
    # One driver for both pools: one write gate for every writer of the process (R2).
    assert db.write_engine.dialect.dbapi is db.engine.dialect.dbapi


async def test_a_request_shares_its_writer_with_later_reads_only_while_its_transaction_is_open(
    client, app
):
    async with app.state.db.writer() as writer:
        scope = {"slicestar.db_writer": writer}
        assert request_reader(scope) is None  # nothing begun: a later read takes its own
        await writer.execute(select(Task.id).limit(1))
        assert request_reader(scope) is writer  # open: reading through it needs no 2nd connection
        await writer.commit()
        assert request_reader(scope) is None  # ended: reading through it would BEGIN IMMEDIATE


async def test_r1_foreign_keys_are_enforced(client, app, settings):
    async with app.state.db.writer() as session:
        session.add(Task(user_id=new_id(), title="orphan"))
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            await session.commit()


async def test_write_sessions_begin_immediate(client, app, settings):
    if not settings.is_sqlite:
        pytest.skip("SQLite locking")
    async with app.state.db.writer() as session:
        await session.execute(select(1))
        # Another connection cannot take the write lock while this transaction holds it.
        other = sqlite3.connect(sqlite_path(settings), timeout=0.05)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
        await session.rollback()
    async with app.state.db.reader() as session:
        await session.execute(select(1))
        other = sqlite3.connect(sqlite_path(settings), timeout=0.05)
        other.execute("BEGIN IMMEDIATE")  # a reader does not hold the write lock
        other.rollback()
        other.close()


async def test_r2_fifty_concurrent_task_creations_through_http(client, browser_factory, app):
    browsers = [client] + [browser_factory() for _ in range(4)]
    for n, browser in enumerate(browsers):
        response = await post_form(
            browser,
            "/register",
            {
                "name": f"User {n}",
                "email": f"user{n}@example.com",
                "password": DEFAULT_PASSWORD,
                "password_confirmation": DEFAULT_PASSWORD,
            },
        )
        assert response.status_code == 303
        await verify_email(browser, f"user{n}@example.com")  # the mailed link signs in
    tokens = [await csrf(browser, "/tasks") for browser in browsers]

    async def create(i: int):
        browser = browsers[i % len(browsers)]
        return await browser.post(
            "/tasks", data={"title": f"Task {i}", "_csrf_token": tokens[i % len(browsers)]}
        )

    responses = await asyncio.gather(*(create(i) for i in range(50)))
    assert [r.status_code for r in responses] == [303] * 50
    async with app.state.db.reader() as session:
        rows = (
            await session.execute(select(Task.user_id, func.count()).group_by(Task.user_id))
        ).all()
    assert sorted(count for _, count in rows) == [10, 10, 10, 10, 10]


def _gate(app):
    return _gate_of(app.state.db)


def _gate_of(db: Database):
    return db.engine.sync_engine.dialect.dbapi.write_gate


async def test_r2_writers_of_one_process_take_turns_at_the_write_gate(client, app, settings):
    # With SQLite's busy timeout at 0 a writer that met the lock would fail at once: every
    # one of 20 concurrent write transactions commits because they queue at the gate.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    db = app.state.db
    await db.dispose()  # fresh connections, each with the listener below
    for engine in db.engines:
        event.listen(engine.sync_engine, "connect", _no_busy_wait)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE gate_probe (n INTEGER)")
    inside, most = 0, 0

    async def write(n: int) -> None:
        nonlocal inside, most
        async with db.write() as session:
            await session.execute(text("INSERT INTO gate_probe VALUES (:n)"), {"n": n})
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)  # other writers get the event loop meanwhile
            inside -= 1

    await asyncio.gather(*(write(n) for n in range(20)))
    async with db.reader() as session:
        assert (await session.execute(text("SELECT count(*) FROM gate_probe"))).scalar() == 20
    assert most == 1 and _gate(app)._owner is None


def _no_busy_wait(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


async def test_r2_writers_of_two_processes_take_turns_at_the_writer_file_lock(app, settings):
    # Two Database objects open the lock file separately, as two server workers do (flock
    # locks belong to the open file, so they exclude each other like two processes). With
    # SQLite's busy timeout at 0 a writer that met the other's SQLite lock would fail at once.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    url = settings.database_url
    workers = [Database(url), Database(url)]
    for db in workers:
        for engine in db.engines:
            event.listen(engine.sync_engine, "connect", _no_busy_wait)
    async with workers[0].engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE lock_probe (n INTEGER)")
    inside, most = 0, 0

    async def write(db: Database, n: int) -> None:
        nonlocal inside, most
        async with db.write() as session:
            await session.execute(text("INSERT INTO lock_probe VALUES (:n)"), {"n": n})
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    try:
        await asyncio.gather(*(write(workers[n % 2], n) for n in range(20)))
        async with workers[1].reader() as session:
            count = (await session.execute(text("SELECT count(*) FROM lock_probe"))).scalar()
    finally:
        for db in workers:
            await db.dispose()
    assert count == 20 and most == 1
    # Nobody holds the lock once the transactions ended.
    probe = WriterFileLock(writer_lock_path(sqlite_path(settings)))
    assert probe.acquire(timeout=0, holder="probe") is True
    probe.release("probe")


async def test_r2_a_writer_waits_for_the_file_lock_of_another_process(tmp_path):
    # A real second process holds the lock for 0.3 s; the writer here gets it after that.
    path = str(tmp_path / ".app.sqlite.writer.lock")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(0.3)\n",
        path,
        stdout=asyncio.subprocess.PIPE,
    )
    assert await holder.stdout.readline() == b"held\n"
    lock = WriterFileLock(path)
    assert lock.acquire(timeout=0.01, holder="writer") is False  # busy: gives up in time
    started = time.monotonic()
    assert await asyncio.to_thread(lock.acquire, 5.0, "writer") is True
    assert time.monotonic() - started > 0.1  # it waited for the other process
    lock.release("writer")
    await holder.wait()


async def test_r2_the_file_lock_is_free_as_soon_as_commit_returns_on_the_thread(settings):
    # A connection that commits on its own thread (one without ``writes_on_loop``) drops the
    # lock there, right after COMMIT, while the loop is still busy elsewhere: another worker's
    # writer need not wait for this event loop.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    engine = engine_module.build_engine(settings.database_url)
    writes = engine.execution_options(**{engine_module.BEGIN_MODE: "immediate"})
    other_process = WriterFileLock(writer_lock_path(sqlite_path(settings)))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE commit_probe (n INTEGER)")
        async with AsyncSession(writes) as session:
            await session.execute(text("INSERT INTO commit_probe VALUES (1)"))
            assert other_process.acquire(timeout=0, holder="elsewhere") is False
            commit = asyncio.create_task(session.commit())
            await asyncio.sleep(0)  # the task runs until it waits for COMMIT on the thread
            # No await from here on: the event loop cannot take the commit's result.
            assert other_process.acquire(timeout=2, holder="elsewhere") is True
            assert not commit.done()
            other_process.release("elsewhere")
            await commit
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT n FROM commit_probe")).scalar() == 1
    finally:
        await engine.dispose()


async def _loop_ticks(stop: asyncio.Event) -> int:
    """Count turns of the event loop (every 10 ms) until ``stop`` is set."""
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def _insert_thread_ident(db: Database, table: str) -> None:
    """One write transaction: insert the ident of the thread SQLite runs the INSERT on."""
    async with db.write() as session:
        conn = await session.connection()
        raw = (await conn.get_raw_connection()).driver_connection._connection
        raw.create_function("thread_ident", 0, threading.get_ident)
        await session.execute(text(f"INSERT INTO {table} VALUES (thread_ident())"))


@contextlib.asynccontextmanager
async def _own_database(settings, table: str):
    """A :class:`Database` of its own on the test's SQLite file with ``table`` (one INTEGER
    column ``n``) created, and a stand-in for another worker's writer file lock; disposed
    afterwards."""
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    db = Database(settings.database_url)
    try:
        async with db.write() as session:
            await session.execute(text(f"CREATE TABLE {table} (n INTEGER)"))
        yield db, WriterFileLock(writer_lock_path(sqlite_path(settings)))
    finally:
        await db.dispose()


async def test_r2_a_write_transaction_runs_on_the_loops_thread_when_its_locks_are_free(settings):
    # shared.database.sqlite_driver: the writer pool's BEGIN IMMEDIATE, statements and COMMIT
    # run on the event loop's thread when the file lock is free at once, so the write lock is
    # never held while a result waits for the loop; the file lock is free when commit returns.
    async with _own_database(settings, "loop_write") as (db, other_process):
        async with db.writer() as session:
            conn = await session.connection()
            async with driver_calls(conn) as calls:
                await session.execute(text("INSERT INTO loop_write VALUES (1)"))
                assert other_process.acquire(timeout=0, holder="elsewhere") is False
                await session.commit()
                assert calls == []  # no call on the connection's thread at all
            assert other_process.acquire(timeout=0, holder="elsewhere") is True
            other_process.release("elsewhere")
        await _insert_thread_ident(db, "loop_write")
        async with db.reader() as session:
            rows = (await session.execute(text("SELECT n FROM loop_write ORDER BY rowid"))).all()
        assert [r.n for r in rows] == [1, threading.get_ident()]


async def test_r2_a_writer_waits_for_another_processs_file_lock_without_blocking_the_loop(
    settings,
):
    # While another worker holds the writer file lock, the writer tries again every 0.2-2 ms
    # and sleeps in between: the loop keeps serving; once the lock is free, the transaction
    # runs on the loop's thread.
    async with _own_database(settings, "lock_wait") as (db, other_process):
        assert other_process.acquire(timeout=0, holder="elsewhere") is True
        stop = asyncio.Event()
        ticking = asyncio.create_task(_loop_ticks(stop))
        write = asyncio.create_task(_insert_thread_ident(db, "lock_wait"))
        await asyncio.sleep(0.3)
        assert not write.done()  # it waits for the lock …
        other_process.release("elsewhere")
        await asyncio.wait_for(write, 5)
        stop.set()
        assert await ticking >= 10  # … while the loop went on turning
        async with db.reader() as session:
            ran_on = (await session.execute(text("SELECT n FROM lock_wait"))).scalar()
        assert ran_on == threading.get_ident()


async def test_r2_a_writer_whose_file_lock_stays_taken_goes_on_on_the_thread(settings, caplog):
    # Past the gate's timeout the writer goes on without the file lock, on the connection's
    # thread, where SQLite's own lock keeps writes apart (as before the lock existed).
    async with _own_database(settings, "lock_stuck") as (db, other_process):
        _gate_of(db).timeout = 0.1
        assert other_process.acquire(timeout=0, holder="elsewhere") is True
        await asyncio.wait_for(_insert_thread_ident(db, "lock_stuck"), 5)
        other_process.release("elsewhere")
        async with db.reader() as session:
            ran_on = (await session.execute(text("SELECT n FROM lock_stuck"))).scalar()
        assert ran_on != threading.get_ident()
        assert caplog.text.count("not free after 0.1 s") == 1  # waited for it once, not twice


async def test_r2_a_write_that_finds_sqlite_locked_waits_on_the_thread_not_the_loop(settings):
    # A connection outside the app (here: a sqlite3 shell's BEGIN IMMEDIATE, held 0.3 s)
    # holds SQLite's write lock: the writer's BEGIN IMMEDIATE on the loop finds it at once
    # (busy timeout 0) and runs again on the connection's thread with BUSY_TIMEOUT_MS.
    async with _own_database(settings, "busy_write") as (db, _):
        outside = sqlite3.connect(sqlite_path(settings), isolation_level=None)
        try:
            outside.execute("BEGIN IMMEDIATE")
            stop = asyncio.Event()
            ticking = asyncio.create_task(_loop_ticks(stop))
            write = asyncio.create_task(_insert_thread_ident(db, "busy_write"))
            await asyncio.sleep(0.3)
            assert not write.done()
            outside.rollback()
            await asyncio.wait_for(write, 5)
            stop.set()
            assert await ticking >= 10
        finally:
            outside.close()
        async with db.reader() as session:
            ran_on = (await session.execute(text("SELECT n FROM busy_write"))).scalar()
        assert ran_on != threading.get_ident()
        assert _gate_of(db)._owner is None


async def test_sqlite_a_writer_checkpoints_the_wal_on_its_thread(settings, monkeypatch, tmp_path):
    # Writers commit on the loop's thread with SQLite's automatic checkpoint off; every
    # CHECKPOINT_EVERY_ROWS changed rows a PASSIVE checkpoint runs on the connection's thread.
    monkeypatch.setattr(sqlite_driver, "CHECKPOINT_EVERY_ROWS", 3)
    async with _own_database(settings, "wal_rows") as (db, _):
        async with db.writer() as session:
            conn = await session.connection()
            raw = (await conn.get_raw_connection()).driver_connection._connection
            assert raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
            async with driver_calls(conn) as calls:
                await session.execute(text("INSERT INTO wal_rows VALUES (1)"))
                await session.commit()
                assert calls == []  # one row: no checkpoint due
                await session.execute(text("INSERT INTO wal_rows VALUES (2), (3)"))
                await session.commit()
                assert calls == [sqlite_driver._checkpoint]
                await session.execute(text("INSERT INTO wal_rows VALUES (4)"))
                await session.commit()
                assert calls == [sqlite_driver._checkpoint]  # counted from the last one
        # The checkpoint copied the WAL into the database file: a copy of the file alone
        # (without its WAL) holds the rows committed before it, not the one after.
        copy = tmp_path / "file-only.sqlite"
        shutil.copyfile(sqlite_path(settings), copy)
        file_only = sqlite3.connect(copy)
        assert file_only.execute("SELECT count(*) FROM wal_rows").fetchone() == (3,)
        file_only.close()


def test_r2_a_rollback_on_the_thread_frees_the_file_lock_and_keeps_nothing(tmp_path):
    path = str(tmp_path / ".app.sqlite.writer.lock")
    gate = WriteGate(file_lock=WriterFileLock(path))
    conn = sqlite3.connect(tmp_path / "app.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER)")
    gate.lock_file("writer")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    other_process = WriterFileLock(path)
    assert other_process.acquire(timeout=0, holder="elsewhere") is False
    _end_transaction(conn, False, gate, "writer")
    assert other_process.acquire(timeout=0, holder="elsewhere") is True
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    conn.close()


async def test_r2_a_file_lock_taken_after_a_cancelled_begin_goes_with_its_connection(tmp_path):
    # A request cancelled while its BEGIN IMMEDIATE waits leaves the gate at once; its
    # connection's thread may still take the file lock afterwards. Only that connection's
    # rollback or close drops it, not another writer leaving the gate.
    path = str(tmp_path / ".app.sqlite.writer.lock")
    gate = WriteGate(timeout=0.05, file_lock=WriterFileLock(path))
    assert await gate.enter("cancelled connection") is True
    gate.leave("cancelled connection")  # the cancellation path
    gate.lock_file("cancelled connection")  # its thread, a moment later
    other_process = WriterFileLock(path)
    assert other_process.acquire(timeout=0, holder="elsewhere") is False
    assert await gate.enter("next writer") is True
    gate.leave("next writer")
    assert other_process.acquire(timeout=0, holder="elsewhere") is False  # still held
    gate.leave("cancelled connection")  # its rollback or close
    assert other_process.acquire(timeout=0, holder="elsewhere") is True
    other_process.release("elsewhere")


def test_only_a_database_file_has_a_writer_lock():
    assert writer_lock_path("db/app.sqlite") == "db/.app.sqlite.writer.lock"
    assert writer_lock_path(":memory:") is None
    assert writer_lock_path("file:x?mode=memory", uri=True) is None


async def test_r2_a_failed_or_cancelled_write_frees_the_write_gate(client, app, settings):
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    db = app.state.db
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            await session.execute(select(1))
            assert _gate(app)._owner is not None  # held from BEGIN IMMEDIATE on
            raise RuntimeError("the work failed")
    assert _gate(app)._owner is None

    started = asyncio.Event()

    async def stuck() -> None:
        async with db.write() as session:
            await session.execute(select(1))
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _gate(app)._owner is None
    async with asyncio.timeout(2), db.write() as session:  # the next writer goes at once
        await session.execute(select(1))


async def test_r2_a_writer_that_never_leaves_slows_the_next_one_down_but_never_blocks_it():
    # SQLite's lock keeps writes apart; the gate only orders them, so it gives up waiting.
    gate = WriteGate(timeout=0.05)
    assert await gate.enter("lost connection") is True
    assert await gate.enter("next writer") is False
    gate.leave("next writer")  # not the owner: nothing happens
    gate.leave("lost connection")
    assert await gate.enter("next writer") is True


async def test_stored_formats_read_back_with_plain_sqlite3(client, app, settings):
    if not settings.is_sqlite:
        pytest.skip("SQLite storage format")
    from tests.support import register

    await register(client, "ann@example.com")
    token = await csrf(client, "/tasks")
    for n in range(5):
        await client.post("/tasks", data={"title": f"T{n}", "_csrf_token": token})
    with sqlite3.connect(sqlite_path(settings)) as conn:
        task_rows = conn.execute(
            "SELECT id, created_at, updated_at FROM tasks ORDER BY rowid"
        ).fetchall()
        user_row = conn.execute("SELECT id, created_at, email_verified_at FROM users").fetchone()
        session_row = conn.execute(
            "SELECT id, created_at, last_activity, expires_at FROM sessions"
        ).fetchone()
    ids = [row[0] for row in task_rows]
    assert all(len(i) == 36 and UUID7_RE.match(i) for i in ids)
    assert ids == sorted(ids), "UUIDv7 text sorts in creation order"
    for value in [v for row in task_rows for v in row[1:]] + [user_row[1], *session_row[1:]]:
        assert TIMESTAMP_RE.match(value), value
    assert UUID7_RE.match(user_row[0]) and UUID7_RE.match(session_row[0])
    assert TIMESTAMP_RE.match(user_row[2])  # email_verified_at, set by the mailed link


async def test_postgresql_uses_native_uuid_and_timestamptz(client, app, settings):
    if settings.is_sqlite:
        pytest.skip("PostgreSQL column types")
    async with app.state.db.engine.connect() as conn:
        types = dict(
            (
                await conn.execute(
                    text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = 'tasks' AND column_name IN ('id', 'user_id', 'created_at')"
                    )
                )
            ).all()
        )
    assert types == {"id": "uuid", "user_id": "uuid", "created_at": "timestamp with time zone"}


async def test_postgresql_pings_a_pooled_connection_only_after_it_sat_idle(settings, monkeypatch):
    # A busy connection is handed out as it is; one idle past the threshold is pinged, and a
    # dead one (its server process ended, as by a restart) is replaced before any query.
    if settings.is_sqlite:
        pytest.skip("PostgreSQL connection pool")
    monkeypatch.setattr(engine_module, "POSTGRES_PING_AFTER_IDLE", 0.3)
    engine = engine_module.build_engine(settings.database_url)
    dialect = engine.sync_engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    backend_pid = text("SELECT pg_backend_pid()")
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(backend_pid)
        for _ in range(3):  # checked in moments ago: no ping
            async with engine.connect() as conn:
                assert await conn.scalar(backend_pid) == first
        assert pings == []
        await asyncio.sleep(0.4)
        async with engine.connect() as conn:  # idle: pinged, alive, kept
            assert await conn.scalar(backend_pid) == first
        assert len(pings) == 1
        killer = create_async_engine(settings.database_url, poolclass=NullPool)
        async with killer.connect() as conn:  # from outside the pool, as a restart would
            assert await conn.scalar(text(f"SELECT pg_terminate_backend({first})")) is True
        await killer.dispose()
        await asyncio.sleep(0.4)
        async with engine.connect() as conn:
            replacement = await conn.scalar(backend_pid)
        assert replacement != first
        assert len(pings) == 2  # the dead connection failed its ping; the new one had none
    finally:
        await engine.dispose()


async def test_postgresql_keeps_a_fixed_pool_and_opens_no_connection_under_load(
    client, app, settings
):
    # More concurrent requests than connections: the extra ones wait their turn on the pool's
    # connections instead of opening (and then closing) more, and the next burst finds the
    # same server processes. The app sizes the pool from DATABASE_POOL_SIZE.
    if settings.is_sqlite:
        pytest.skip("PostgreSQL connection pool")
    assert app.state.db.engine.pool.size() == settings.database_pool_size == 10
    assert app.state.db.engine.pool._max_overflow == 0
    db = Database(settings.database_url, pool_size=2)

    async def busy_request() -> int:
        async with db.engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            await asyncio.sleep(0.02)  # hold it while the others ask
            return int(pid)

    try:
        first = set(await asyncio.gather(*(busy_request() for _ in range(8))))
        second = set(await asyncio.gather(*(busy_request() for _ in range(8))))
        assert len(first) == 2 and second == first
        assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (2, 0)
    finally:
        await db.dispose()


def test_the_postgresql_pool_size_must_be_at_least_one(settings):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="database_pool_size"):
        type(settings)(**{**settings.model_dump(), "database_pool_size": 0})


async def test_postgresql_reads_are_their_own_transactions_and_writes_begin(settings):
    # single_read_engine and reader sessions send no BEGIN (each SELECT starts and ends its
    # own transaction: one round trip); writer sessions and the engines themselves still run
    # their statements inside a BEGIN.
    if settings.is_sqlite:
        pytest.skip("PostgreSQL transactions")
    db = Database(settings.database_url)

    async def open_transaction_after_a_select(conn: Any) -> bool:
        await conn.execute(text("SELECT 1"))
        raw = await conn.get_raw_connection()
        return bool(raw.driver_connection.is_in_transaction())  # the server's own status

    try:
        for _ in range(2):  # a fresh connection, then the same one again from the pool
            async with db.single_read_engine.connect() as conn:
                assert await open_transaction_after_a_select(conn) is False
        async with db.reader() as session:  # a page's reads: each SELECT on its own
            assert await open_transaction_after_a_select(await session.connection()) is False
            assert await open_transaction_after_a_select(await session.connection()) is False
        async with db.writer() as session:
            assert await open_transaction_after_a_select(await session.connection()) is True
        async with db.engine.connect() as conn:
            assert await open_transaction_after_a_select(conn) is True
        async with db.write_engine.connect() as conn:
            assert await open_transaction_after_a_select(conn) is True
    finally:
        await db.dispose()


async def test_timestamps_round_trip_as_aware_utc(client, app):
    from tests.support import register

    await register(client, "ann@example.com")
    async with app.state.db.reader() as session:
        user = await session.scalar(select(User))
    assert user.created_at.tzinfo is not None and user.created_at.utcoffset() == timedelta(0)
    assert isinstance(user.id, uuid.UUID) and user.id.version == 7


def test_format_and_parse_timestamp():
    value = datetime(2024, 1, 15, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(value) == "2024-01-15T10:30:00.123Z"
    assert parse_timestamp("2024-01-15T10:30:00.123Z") == datetime(
        2024, 1, 15, 10, 30, 0, 123000, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2024, 1, 15))


def test_new_ids_are_time_ordered_uuid7():
    ids = [new_id() for _ in range(1000)]
    assert all(i.version == 7 for i in ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)


def test_escape_like():
    assert escape_like("100%_\\") == "100\\%\\_\\\\"


@contextlib.asynccontextmanager
async def driver_calls(conn):
    """The functions ``conn`` runs on aiosqlite's thread while the block runs (one per hop)."""
    raw = (await conn.get_raw_connection()).driver_connection
    calls = []
    real = raw._execute

    async def counting(fn, *args, **kwargs):
        calls.append(args[2] if fn is _tracked else fn)  # _tracked(owner, number, fn, ...)
        return await real(fn, *args, **kwargs)

    raw._execute = counting
    try:
        yield calls
    finally:
        raw._execute = real


async def test_sqlite_statements_cost_one_driver_round_trip_each(settings):
    # shared.database.sqlite_driver: one call on aiosqlite's thread per statement, with the
    # driver's results (rows, rowcount, lastrowid, errors) as before. (The app's pools run
    # most statements on the event loop's thread; an engine without ``reads_on_loop`` or
    # ``writes_on_loop`` runs every one on the connection's thread.)
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    engine = engine_module.build_engine(settings.database_url)
    try:
        async with engine.connect() as conn, driver_calls(conn) as calls:
            try:
                await conn.exec_driver_sql(
                    "CREATE TEMP TABLE probe (n INTEGER PRIMARY KEY, t TEXT)"
                )
                calls.clear()
                inserted = await conn.exec_driver_sql("INSERT INTO probe (t) VALUES ('a')")
                assert len(calls) == 1
                assert inserted.lastrowid == 1 and inserted.rowcount == 1
                await conn.exec_driver_sql("INSERT INTO probe (t) VALUES (?)", [("b",), ("c",)])
                calls.clear()
                rows = (await conn.exec_driver_sql("SELECT n, t FROM probe ORDER BY n")).all()
                assert len(calls) == 1
                assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
                changed = await conn.exec_driver_sql("UPDATE probe SET t = 'z' WHERE n > 1")
                assert changed.rowcount == 2
                with pytest.raises(Exception, match=r"(?i)unique"):
                    await conn.exec_driver_sql("INSERT INTO probe (n, t) VALUES (1, 'dup')")
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


async def test_sqlite_rollback_outside_a_transaction_costs_no_round_trip(client, app, settings):
    # The per-request session lookup runs one SELECT without BEGIN, then rolls back.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    async with app.state.db.single_read_engine.connect() as conn, driver_calls(conn) as calls:
        assert (await conn.exec_driver_sql("SELECT 7")).scalar() == 7
        await conn.rollback()
        assert calls == []  # the SELECT ran on the event loop's thread, the rollback nowhere
    async with app.state.db.engine.connect() as conn:  # inside BEGIN … a rollback still runs
        await conn.exec_driver_sql("CREATE TEMP TABLE probe2 (n INTEGER)")
        await conn.commit()
        await conn.exec_driver_sql("INSERT INTO probe2 VALUES (1)")
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT count(*) FROM probe2")).scalar() == 0
        await conn.rollback()


async def test_sqlite_a_read_transaction_ends_without_a_round_trip(client, app, settings):
    # Rolling back a read transaction only drops its WAL snapshot: the driver does it on the
    # calling thread. A transaction that changed a row is rolled back on aiosqlite's thread.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    db = app.state.db
    async with db.write_engine.connect() as conn:
        await conn.exec_driver_sql("CREATE TABLE probe4 (n INTEGER)")
        await conn.exec_driver_sql("INSERT INTO probe4 VALUES (1)")
        await conn.commit()
    async with db.engine.connect() as conn, driver_calls(conn) as calls:
        raw = (await conn.get_raw_connection()).driver_connection._connection
        assert (await conn.exec_driver_sql("SELECT count(*) FROM probe4")).scalar() == 1
        other = sqlite3.connect(sqlite_path(settings))
        try:
            other.execute("INSERT INTO probe4 VALUES (2)")
            other.commit()
        finally:
            other.close()
        # Still the snapshot of BEGIN: the other connection's row is not there yet.
        assert (await conn.exec_driver_sql("SELECT count(*) FROM probe4")).scalar() == 1
        assert raw.in_transaction and calls == []  # the reads ran on the event loop's thread
        await conn.rollback()
        assert not raw.in_transaction and calls == []  # no call on aiosqlite's thread
        assert (await conn.exec_driver_sql("SELECT count(*) FROM probe4")).scalar() == 2
        await conn.rollback()
        calls.clear()
        # A "read" transaction that wrote is rolled back on the connection's thread.
        await conn.exec_driver_sql("INSERT INTO probe4 VALUES (3)")
        await conn.rollback()
        assert len(calls) == 2 and calls[1] is _end_transaction  # ROLLBACK there
        assert (await conn.exec_driver_sql("SELECT count(*) FROM probe4")).scalar() == 2
        await conn.rollback()


async def test_sqlite_begin_travels_with_the_first_statement(client, app, settings):
    # BEGIN costs no round trip of its own; a transaction that runs nothing costs none.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    db = app.state.db
    async with db.write_engine.connect() as conn, driver_calls(conn) as calls:
        await conn.exec_driver_sql("CREATE TABLE probe3 (n INTEGER)")
        await conn.commit()
        calls.clear()
        await conn.exec_driver_sql("INSERT INTO probe3 VALUES (1)")
        assert calls == []  # BEGIN IMMEDIATE and the INSERT, in one go on the loop's thread
        assert _gate(app)._owner is not None
        await conn.commit()
        assert calls == [] and _gate(app)._owner is None  # COMMIT there too
        calls.clear()
        await conn.begin()
        await conn.commit()  # nothing ran: nothing to send
        assert calls == [] and _gate(app)._owner is None
    async with db.engine.connect() as conn, driver_calls(conn) as calls:
        rows = (await conn.exec_driver_sql("SELECT n FROM probe3")).all()
        assert [tuple(r) for r in rows] == [(1,)]
        assert calls == []  # BEGIN and the SELECT, both on the event loop's thread
        assert (await conn.get_raw_connection()).driver_connection._connection.in_transaction
        await conn.rollback()
        assert calls == []  # a read transaction ends without a round trip
    # A write whose first statement fails keeps the gate (its transaction began) until the
    # rollback.
    async with db.write_engine.connect() as conn:
        with pytest.raises(Exception, match=r"(?i)no such table"):
            await conn.exec_driver_sql("INSERT INTO missing_table VALUES (1)")
        assert _gate(app)._owner is not None
        await conn.rollback()
    assert _gate(app)._owner is None


async def _thread_of_select(conn) -> int:
    """The thread that runs a SELECT on ``conn``: SQLite calls a Python function there."""
    raw = (await conn.get_raw_connection()).driver_connection._connection
    raw.create_function("thread_ident", 0, threading.get_ident)
    return (await conn.exec_driver_sql("SELECT thread_ident()")).scalar()


async def test_sqlite_reader_selects_run_on_the_event_loops_thread(client, app, settings):
    # shared.database.sqlite_driver: the reader pool's SELECTs make no thread hop, nor do a
    # writer's statements once its locks were free at once (tests below); statements on the
    # loop's thread never wait for a lock, those on the connection's thread wait as before.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    db = app.state.db
    loop_thread = threading.get_ident()
    for engine in (db.engine, db.single_read_engine):
        async with engine.connect() as conn:
            assert await _thread_of_select(conn) == loop_thread
            # … and never wait for a lock there; statements on the thread wait as before.
            raw = (await conn.get_raw_connection()).driver_connection._connection
            assert raw.execute("PRAGMA busy_timeout").fetchone() == (0,)
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
            assert raw.execute("PRAGMA busy_timeout").fetchone() == (0,)
            await conn.rollback()
    async with db.write_engine.connect() as conn:
        assert await _thread_of_select(conn) == loop_thread
        raw = (await conn.get_raw_connection()).driver_connection._connection
        assert raw.execute("PRAGMA busy_timeout").fetchone() == (0,)
        await conn.rollback()
    # A signed-in page (session lookup, notifications, task figures) makes no call on any
    # connection's thread at all. (The client runs the app in this task; background tasks,
    # such as the audit trail's writer, have their own.)
    await register(client, "loop@example.com")
    assert (await client.get("/dashboard")).status_code == 200  # the sign-in's message shown
    calls: list[Any] = []
    real = aiosqlite.Connection._execute
    this_task = asyncio.current_task()

    async def counting(self, fn, *args, **kwargs):
        if asyncio.current_task() is this_task:
            calls.append(args[2] if fn is _tracked else fn)
        return await real(self, fn, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiosqlite.Connection, "_execute", counting)
        page = await client.get("/dashboard")
    assert page.status_code == 200 and "loop@example.com" in page.text
    assert calls == []


async def test_sqlite_a_locked_read_waits_on_the_connections_thread_not_the_loop(tmp_path):
    # A read that finds the database locked by another connection is run again on the
    # connection's thread with the busy timeout: it still gets its rows once the lock goes,
    # and meanwhile the event loop serves everything else (here: a task that ticks).
    path = tmp_path / "locked.sqlite"
    engine = engine_module.build_engine(f"sqlite+aiosqlite:///{path}", reads_on_loop=True)
    try:
        single = engine.execution_options(**{engine_module.BEGIN_MODE: "none"})  # no BEGIN
        async with single.connect() as conn:
            # A rollback journal, where a writer's EXCLUSIVE lock keeps readers out (a WAL
            # reader meets such a lock only in rarer cases, e.g. a crash recovery).
            await conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
            await conn.exec_driver_sql("CREATE TABLE probe (n INTEGER)")
            await conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
            await conn.commit()
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        asyncio.get_running_loop().call_later(0.3, other.rollback)
        try:
            async with engine.connect() as conn, driver_calls(conn) as calls:
                await asyncio.sleep(0)
                ticks_before = ticks
                count = (await conn.exec_driver_sql("SELECT count(*) FROM probe")).scalar()
                ticks_during = ticks - ticks_before
                await conn.rollback()
        finally:
            ticker.cancel()
            other.close()
        assert count == 1
        assert calls == [_run]  # the retry, on the connection's thread
        assert ticks_during >= 5  # the loop kept running while the read waited
    finally:
        await engine.dispose()


async def test_sqlite_a_streamed_query_runs_inside_its_transaction(client, app, settings):
    # Server-side cursors run their statement themselves: the held-back BEGIN IMMEDIATE is
    # sent first, so the write lock is held while the rows stream.
    if not settings.is_sqlite:
        pytest.skip("the aiosqlite driver")
    async with app.state.db.write_engine.connect() as conn:
        result = await conn.stream(text("SELECT 1 UNION ALL SELECT 2"))
        assert [tuple(r) for r in await result.all()] == [(1,), (2,)]
        assert _gate(app)._owner is not None
        other = sqlite3.connect(sqlite_path(settings), timeout=0.05)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
        await conn.rollback()
    assert _gate(app)._owner is None


def ticking_clock():
    """A clock that moves 1 ms each time it is read, as a busy machine's may between two
    columns of one row."""
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    reads = iter(range(1000))
    return lambda: start + timedelta(milliseconds=next(reads))


async def test_repository_insert_stamps_one_instant_on_every_timestamp_of_a_row(client, app):
    from shared import clock

    ticking = ticking_clock()

    async with app.state.db.write() as session:
        user = User(email="tick@example.com", name="Tick", password_hash="x")
        session.add(user)
        await session.flush()
        with clock.use_clock(ticking):
            first = await TaskRepository(session).insert(Task(user_id=user.id, title="one"))
            second = await TaskRepository(session).insert(Task(user_id=user.id, title="two"))
    assert first.created_at == first.updated_at
    assert second.created_at == second.updated_at > first.created_at  # one read per row


async def test_an_orm_flush_stamps_one_instant_on_both_timestamps_of_a_new_row(client, app):
    # The same rule when the ORM inserts (session.add + flush): updated_at takes created_at.
    from shared import clock

    ticking = ticking_clock()

    async with app.state.db.write() as session:
        with clock.use_clock(ticking):
            user = User(email="tock@example.com", name="Tock", password_hash="x")
            session.add(user)
            await session.flush()
            tasks = [Task(user_id=user.id, title=title) for title in ("one", "two")]
            session.add_all(tasks)
            await session.flush()  # one INSERT for both rows
    for row in (user, *tasks):
        assert row.created_at == row.updated_at
    assert user.created_at < tasks[0].created_at < tasks[1].created_at
    async with app.state.db.reader() as session:
        stored = (
            await session.execute(
                select(Task.created_at, Task.updated_at).where(Task.user_id == user.id)
            )
        ).all()
    assert len(stored) == 2 and all(created == updated for created, updated in stored)


async def test_repository_insert_fills_python_defaults_and_writes_one_row(client, app):

    async with app.state.db.write() as session:
        user = User(email="ins@example.com", name="Ins", password_hash="x")
        session.add(user)
        await session.flush()
        before = datetime.now(UTC) - timedelta(seconds=1)
        task = await TaskRepository(session).insert(Task(user_id=user.id, title="Core insert"))
        assert UUID7_RE.match(str(task.id))
        assert task.status is TaskStatus.PENDING  # the column's default
        assert task.created_at == task.updated_at and task.created_at >= before
        assert task not in session  # written outside the unit of work
    async with app.state.db.reader() as session:
        stored = await session.get(Task, task.id)
    assert (stored.user_id, stored.title, stored.status, stored.created_at) == (
        user.id,
        "Core insert",
        TaskStatus.PENDING,
        task.created_at,
    )
    # A broken foreign key fails at the INSERT and nothing is written.
    with pytest.raises(IntegrityError):
        async with app.state.db.write() as session:
            await TaskRepository(session).insert(Task(user_id=new_id(), title="orphan"))
    async with app.state.db.reader() as session:
        titles = (await session.execute(select(Task.title))).scalars().all()
    assert titles == ["Core insert"]
