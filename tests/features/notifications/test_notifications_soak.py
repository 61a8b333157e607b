"""Soak: 200 concurrent SSE clients on one worker process for 30 seconds.

40 users × 5 tabs hold streams open on one uvicorn process while a notification is written
for a user every half second. Checks:

- every tab of the owner receives each notification, and no other tab does;
- the worker's query rate over the subscribed window stays ≤ 1 per second (+ 1): counted by a
  SQLAlchemy listener inside the worker (``counting_app``), read at the window's start and end,
  so it counts every statement the process sends, not what the poller says about itself;
- the worker's resident memory stays flat (first quarter of the window vs last quarter).

It runs in every ``make test`` (about 40 s): the users and their sessions are inserted
directly, not signed up through 40 Argon2 hashes. ``SOAK_SECONDS`` changes the window.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from features.notifications.service import notify_user
from features.sessions.service import SessionService, session_cookie_name
from features.users.service import UserService
from shared.config import Settings
from shared.database import Database
from tests.conftest import SECRET_KEY
from tests.features.notifications.servers import Server, open_stream, start_server

USERS = 40
TABS = 5
SECONDS = float(os.environ.get("SOAK_SECONDS", "30"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def signed_in_users(db: Database, settings: Settings) -> list[tuple[object, str]]:
    """``USERS`` users, each with one live session: ``[(user id, session cookie value)]``."""
    made = []
    async with db.writer() as session:
        users, sessions = UserService(session), SessionService(session, settings)
        for i in range(USERS):
            user = await users.create(
                name=f"Soak {i}", email=f"soak{i}@example.com", password_hash="!"
            )
            await users.mark_email_verified(user.id)
            token, _ = await sessions.start(
                user.id, remember=False, ip_address="127.0.0.1", user_agent="soak"
            )
            made.append((user.id, token))
        await session.commit()
    return made


async def statements_sent(server: Server, count_file: Path) -> int:
    """Ask the worker (SIGUSR1) for its statement count; wait for the answer."""
    before = count_file.read_text() if count_file.exists() else ""
    server.process.send_signal(signal.SIGUSR1)
    for _ in range(200):
        if count_file.exists() and (text := count_file.read_text()) and text != before:
            return int(text.split()[1])
        await asyncio.sleep(0.01)
    raise AssertionError("the worker did not report its statement count")


async def test_200_streams_on_one_worker(sqlite_template: Path, tmp_path: Path):
    db_path = tmp_path / "app.sqlite"
    shutil.copyfile(sqlite_template, db_path)
    url = f"sqlite+aiosqlite:///{db_path}"
    settings = Settings(app_env="test", secret_key=SECRET_KEY, database_url=url)
    db = Database(url)
    users = await signed_in_users(db, settings)
    count_file = tmp_path / "statements.txt"
    server = start_server(
        db_path,
        tmp_path,
        "soak",
        factory="tests.features.notifications.counting_app:create_app",
        STATEMENT_COUNT_FILE=str(count_file),
    )
    limits = httpx.Limits(max_connections=TABS + 2, max_keepalive_connections=TABS + 2)
    cookie = session_cookie_name(settings)
    clients = [httpx.AsyncClient(limits=limits, cookies={cookie: token}) for _, token in users]
    try:
        async with AsyncExitStack() as stack:
            streams = await asyncio.gather(
                *(
                    stack.enter_async_context(open_stream(client, server.url))
                    for client in clients
                    for _ in range(TABS)
                )
            )
            assert len(streams) == USERS * TABS
            loop = asyncio.get_running_loop()
            counted_at_start = await statements_sent(server, count_file)
            started = loop.time()
            samples: list[int] = []
            sent: dict[int, list[str]] = {}
            n = 0
            while loop.time() - started < SECONDS:
                who = n % USERS
                note = await notify_user(db, users[who][0], "info", f"Soak {n}", "m")
                sent.setdefault(who, []).append(str(note.id))
                samples.append(rss_kib(server.process.pid))
                n += 1
                await asyncio.sleep(0.5)
            counted_at_end = await statements_sent(server, count_file)
            window = loop.time() - started
            expected = {i: sent.get(i // TABS, []) for i in range(len(streams))}
            received: dict[int, list[str]] = {i: [] for i in range(len(streams))}
            deadline = loop.time() + 10
            while received != expected and loop.time() < deadline:  # the last ones arrive
                await asyncio.sleep(0.1)
                for index, stream in enumerate(streams):
                    received[index] += [e["id"] for e in _drain(stream)]
            await asyncio.sleep(1.5)  # one more poll: nothing arrives twice or late
            for index, stream in enumerate(streams):
                received[index] += [e["id"] for e in _drain(stream)]
    finally:
        for client in clients:
            await client.aclose()
        await db.dispose()
        exit_code = server.stop()

    for index, ids in received.items():
        assert ids == expected[index], f"tab {index}"
    queries = counted_at_end - counted_at_start
    match = re.search(
        r"notification poller stopped: \d+ queries in [\d.]+ s, at most (\d+)",
        server.log.read_text(),
    )
    assert match and int(match.group(1)) == USERS * TABS, server.log.read_text()[-2000:]
    quarter = len(samples) // 4
    early = sum(samples[:quarter]) / quarter
    late = sum(samples[-quarter:]) / quarter
    print(
        f"\nsoak: {USERS * TABS} streams, {n} notifications in {window:.1f} s; worker sent "
        f"{queries} queries ({queries / window:.2f}/s); RSS {early / 1024:.1f} MiB (first "
        f"quarter) → {late / 1024:.1f} MiB (last quarter); exit {exit_code}"
    )
    assert queries <= window * 1 + 1, f"{queries} queries in {window:.1f} s"
    assert queries >= window / 2  # and the count is real: the poller ran all along
    assert late - early < 8 * 1024, "worker memory grew by more than 8 MiB"


def _drain(stream) -> list[dict]:
    items = []
    while not stream.events.empty():
        items.append(stream.events.get_nowait())
    return items
