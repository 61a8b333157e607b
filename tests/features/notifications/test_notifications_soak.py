"""Soak: 200 concurrent SSE clients on one worker process.

Runs only with ``SOAK=1`` (about 30-60 s with set-up). 40 users × 5 tabs hold streams open
on one uvicorn process for ``SOAK_SECONDS`` (default 20) while a notification is written for
a user every half second. Checks: every tab of the owner receives each notification and no
other tab does; the poller's query count stays ≤ 1 per second of running time (read from
the worker's shutdown log line); the worker's resident memory stays flat between the first
and the last quarter of the run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from features.notifications.service import notify_user
from shared.database import Database
from tests.features.notifications.servers import open_stream, start_server
from tests.features.notifications.support import user_id
from tests.features.notifications.test_notifications_live import sign_up

pytestmark = pytest.mark.skipif(os.environ.get("SOAK") != "1", reason="soak: set SOAK=1")

USERS = 40
TABS = 5
SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_200_streams_on_one_worker(sqlite_template: Path, tmp_path: Path):
    db_path = tmp_path / "app.sqlite"
    shutil.copyfile(sqlite_template, db_path)
    server = start_server(db_path, tmp_path, "soak")
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    limits = httpx.Limits(max_connections=TABS + 2, max_keepalive_connections=TABS + 2)
    clients = [httpx.AsyncClient(limits=limits) for _ in range(USERS)]
    try:
        for i, client in enumerate(clients):
            await sign_up(client, server.url, f"soak{i}@example.com")
        owners = [await user_id(db, f"soak{i}@example.com") for i in range(USERS)]

        async with AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(open_stream(client, server.url))
                for client in clients
                for _ in range(TABS)
            ]
            assert len(streams) == USERS * TABS
            loop = asyncio.get_running_loop()
            started = loop.time()
            samples: list[tuple[float, int]] = []
            sent: dict[int, list[str]] = {}
            n = 0
            while loop.time() - started < SECONDS:
                who = n % USERS
                note = await notify_user(db, owners[who], "info", f"Soak {n}", "m")
                sent.setdefault(who, []).append(str(note.id))
                samples.append((loop.time() - started, rss_kib(server.process.pid)))
                n += 1
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.5)  # let the last one arrive
        received = {
            index: [e["id"] for e in _drain(stream)] for index, stream in enumerate(streams)
        }
    finally:
        for client in clients:
            await client.aclose()
        await db.dispose()
        exit_code = server.stop()

    for index, ids in received.items():
        assert ids == sent.get(index // TABS, []), f"tab {index}"
    log = server.log.read_text()
    match = re.search(
        r"notification poller stopped: (\d+) queries in ([\d.]+) s, at most (\d+)", log
    )
    assert match, log[-2000:]
    queries, running, peak = int(match.group(1)), float(match.group(2)), int(match.group(3))
    assert peak == USERS * TABS
    assert queries <= running + 1
    quarter = len(samples) // 4
    early = sum(rss for _, rss in samples[:quarter]) / quarter
    late = sum(rss for _, rss in samples[-quarter:]) / quarter
    print(
        f"\nsoak: {USERS * TABS} streams, {n} notifications in {SECONDS:.0f} s; poller "
        f"{queries} queries in {running:.1f} s ({queries / running:.2f}/s); RSS "
        f"{early / 1024:.1f} MiB (first quarter) → {late / 1024:.1f} MiB (last quarter); "
        f"exit {exit_code}"
    )
    assert late - early < 8 * 1024, "worker memory grew by more than 8 MiB"


def _drain(stream) -> list[dict]:
    items = []
    while not stream.events.empty():
        items.append(stream.events.get_nowait())
    return items
