"""Live push across two worker processes on one SQLite file.

Two real uvicorn processes serve one database file (each polling it, or, with ``REDIS_URL``,
one of them polling and both receiving over Redis pub/sub). A tab subscribed on process A
receives, within 2 seconds, the notification that an action on process B (enabling two-factor
authentication) creates; a reconnect with ``Last-Event-ID`` (or the script's
``?last_event_id=``) replays what it missed; SIGTERM ends open streams and the process exits
cleanly.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from features.notifications.models import Notification
from features.notifications.service import notify_user
from shared import clock
from shared.database import Database
from shared.database.types import format_timestamp
from tests.features.auth.two_factor.support import enable_two_factor
from tests.features.notifications.servers import open_stream, start_server
from tests.features.notifications.support import rows, user_id
from tests.support import DEFAULT_PASSWORD, verify_on_server

DELIVERY_SECONDS = 2.0


@pytest.fixture
def db_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "app.sqlite"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture(params=["poller", "redis"])
def two_servers(request: pytest.FixtureRequest, db_path: Path, tmp_path: Path):
    """Two processes on one SQLite file: each polling, or sharing one poller through Redis."""
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    servers = [start_server(db_path, tmp_path, name, **env) for name in ("a", "b")]
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.stop()


async def sign_up(client: httpx.AsyncClient, base_url: str, email: str) -> None:
    started = time.time_ns()
    page = await client.get(f"{base_url}/register")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    data = {"name": "Live", "email": email, "password": DEFAULT_PASSWORD}
    data |= {"password_confirmation": DEFAULT_PASSWORD, "_csrf_token": token}
    response = await client.post(f"{base_url}/register", data=data)
    assert response.status_code == 303, response.text
    await verify_on_server(client, base_url, email, after_ns=started)  # the link signs in


async def test_enabling_two_factor_through_b_reaches_a_stream_on_a_within_2s(two_servers, db_path):
    a, b = two_servers
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        # One browser: its cookies for 127.0.0.1 go to both ports. Pages are asked of B.
        async with httpx.AsyncClient(base_url=b.url) as tab:
            await sign_up(tab, b.url, "live@example.com")
            owner = await user_id(db, "live@example.com")

            async with open_stream(tab, a.url) as on_a, open_stream(tab, b.url) as on_b:
                # A real action on B: confirm the password, read the key, send a code. Its
                # security event becomes a notification in B's process (after the response).
                secret, _ = await enable_two_factor(tab)
                assert secret
                got_a = await on_a.next(DELIVERY_SECONDS)  # within 2 s of B's answer
                got_b = await on_b.next(DELIVERY_SECONDS)
            [first] = await rows(db, owner)
            assert first.data["event"] == "authn_mfa_enabled"
            for got in (got_a, got_b):
                assert got["event"] == "notification"
                assert got["id"] == str(first.id)
                assert got["data"]["title"] == "Two-factor authentication enabled"
                assert got["data"]["unread"] == 1
                assert got["data"]["link"] == "/settings"

            # Missed while disconnected: replayed on reconnect from Last-Event-ID, in order.
            missed = [await notify_user(db, owner, "info", f"Missed {i}", "m") for i in (1, 2)]
            headers = {"Last-Event-ID": str(first.id)}
            async with open_stream(tab, a.url, headers) as resumed:
                replay = [await resumed.next(DELIVERY_SECONDS) for _ in missed]
                later = await notify_user(db, owner, "info", "After resume", "m")
                live = await resumed.next(DELIVERY_SECONDS)
                await asyncio.sleep(1.5)  # one more poll: nothing is delivered twice
                assert resumed.events.empty()
            assert [e["id"] for e in replay] == [str(n.id) for n in missed]
            assert [e["data"]["unread"] for e in replay] == [3, 3]
            assert live["id"] == str(later.id) and live["data"]["unread"] == 4

            # Another user's stream never sees these.
            async with httpx.AsyncClient() as stranger:
                await sign_up(stranger, a.url, "other@example.com")
                async with open_stream(stranger, a.url) as theirs:
                    await notify_user(db, owner, "info", "Private", "m")
                    await asyncio.sleep(DELIVERY_SECONDS)
                    assert theirs.events.empty()
    finally:
        await db.dispose()


async def test_the_scripts_last_event_id_parameter_replays_what_was_missed(one_server, db_path):
    """``notifications.js`` reconnects itself after a back-off and cannot set the
    ``Last-Event-ID`` header, so it sends ``?last_event_id=``: the same replay."""
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        async with httpx.AsyncClient() as tab:
            await sign_up(tab, one_server.url, "resume@example.com")
            owner = await user_id(db, "resume@example.com")
            seen, *missed = [
                await notify_user(db, owner, "info", f"Note {i}", "m") for i in range(4)
            ]
            query = f"?last_event_id={seen.id}"
            async with open_stream(tab, one_server.url, query=query) as stream:
                replay = [await stream.next(DELIVERY_SECONDS) for _ in missed]
                await asyncio.sleep(1.5)
                assert stream.events.empty()  # not `seen`, and nothing twice
            assert [e["id"] for e in replay] == [str(n.id) for n in missed]
            assert [e["data"]["title"] for e in replay] == ["Note 1", "Note 2", "Note 3"]
            assert [e["data"]["unread"] for e in replay] == [4, 4, 4]
            # A malformed id is ignored (no replay), never an error.
            async with open_stream(tab, one_server.url, query="?last_event_id=nope") as stream:
                await asyncio.sleep(1.5)
                assert stream.events.empty()
    finally:
        await db.dispose()


async def test_sigterm_ends_open_streams_and_the_process_exits_cleanly(two_servers):
    a, _ = two_servers
    async with httpx.AsyncClient() as tab:
        await sign_up(tab, a.url, "stop@example.com")
        async with open_stream(tab, a.url) as stream:
            exit_code = await asyncio.to_thread(a.stop, 15)
            await asyncio.wait_for(stream.ended.wait(), 5)
    # uvicorn re-raises the captured SIGTERM after a graceful shutdown: -15 is a clean stop.
    assert exit_code in (0, -15)
    log = a.log.read_text()
    assert "Application shutdown complete." in log
    assert "Traceback" not in log


@pytest.fixture
def one_server(db_path: Path, tmp_path: Path):
    server = start_server(db_path, tmp_path, "single")
    yield server
    server.stop()


def last_activity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT last_activity FROM sessions").fetchone()[0]


async def test_s14_an_open_stream_does_not_keep_an_idle_session_alive(one_server, db_path):
    async with httpx.AsyncClient() as tab:
        await sign_up(tab, one_server.url, "idle@example.com")
        earlier = format_timestamp(clock.now() - timedelta(minutes=10))
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE sessions SET last_activity = ?", (earlier,))
        headers = {"Accept": "text/event-stream"}  # what EventSource sends
        async with open_stream(tab, one_server.url, headers):
            pass
        async with open_stream(tab, one_server.url, headers):
            pass
        assert last_activity(db_path) == earlier
        assert (await tab.get(f"{one_server.url}/dashboard")).status_code == 200
        assert last_activity(db_path) > earlier  # a page view is activity


def uuid7_at(unix_ms: int, rand: int = 12345) -> uuid.UUID:
    """A UUIDv7 made at ``unix_ms`` (RFC 9562 §5.7)."""
    return uuid.UUID(int=(unix_ms << 80) | (0x7 << 76) | (0b10 << 62) | rand)


async def test_a_row_committed_late_with_an_older_id_still_reaches_an_open_stream(
    one_server, db_path
):
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        async with httpx.AsyncClient() as tab:
            await sign_up(tab, one_server.url, "late@example.com")
            owner = await user_id(db, "late@example.com")
            # The page showed `shown`; the tab connects after it: `shown` is not sent again,
            # even though the poller finds it inside its look-back window.
            shown = await notify_user(db, owner, "info", "On the page", "m")
            headers = {"Last-Event-ID": str(shown.id)}
            async with open_stream(tab, one_server.url, headers) as stream:
                newer = await notify_user(db, owner, "info", "Newer", "m")
                assert (await stream.next(DELIVERY_SECONDS))["id"] == str(newer.id)
                # Its id was made 1 s before `newer`'s, its commit lands only now (a slow
                # transaction): the stream has sent a newer id, and must still send this one.
                late_id = uuid7_at((newer.id.int >> 80) - 1000)
                async with db.writer() as session:
                    session.add(
                        Notification(
                            id=late_id,
                            user_id=owner,
                            type="info",
                            title="Committed late",
                            message="m",
                        )
                    )
                    await session.commit()
                late = await stream.next(DELIVERY_SECONDS)
                assert late["id"] == str(late_id) and late["data"]["title"] == "Committed late"
                assert late["data"]["unread"] == 3
                await asyncio.sleep(1.5)  # more polls see all three rows: none is sent twice
                assert stream.events.empty()
    finally:
        await db.dispose()
