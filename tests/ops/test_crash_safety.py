"""SECURITY.md R4: ``kill -9`` during writes loses nothing that was acknowledged.

Four clients create tasks as fast as the server answers; the whole server process group is
SIGKILLed mid-load (no shutdown code runs), restarted, and killed again, ``R4_CYCLES`` times
(default 20). After every kill the database must pass ``integrity_check`` and
``foreign_key_check`` and hold every task whose creation the client saw acknowledged (303).
In WAL mode with ``synchronous=NORMAL`` a commit is durable against a process crash (not
against power loss, which the operating system's own guarantees cover).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import httpx

from tests.ops.server import AppProcess, check_database, signed_in_client, task_titles

CYCLES = int(os.environ.get("R4_CYCLES", "20"))
WRITERS = 4


def test_r4_kill_9_during_writes_loses_no_acknowledged_write(ops_dir: Path) -> None:
    server = AppProcess(ops_dir)
    server.start()
    client, token = signed_in_client(server, "r4@example.com")
    acknowledged: set[str] = set()
    failures: list[int] = []
    numbers = itertools.count()
    lock = threading.Lock()

    def write_until(stop: threading.Event, cycle: int) -> None:
        with httpx.Client(base_url=server.base_url, cookies=client.cookies, timeout=10) as http:
            while not stop.is_set():
                title = f"cycle {cycle} task {next(numbers)}"
                try:
                    response = http.post("/tasks", data={"title": title, "_csrf_token": token})
                except httpx.HTTPError:  # the server died under us: not acknowledged
                    return
                with lock:
                    if response.status_code == 303:
                        acknowledged.add(title)
                    else:
                        failures.append(response.status_code)

    try:
        for cycle in range(CYCLES):
            if cycle:
                server.start()
            before = len(acknowledged)
            stop = threading.Event()
            writers = [
                threading.Thread(target=write_until, args=(stop, cycle)) for _ in range(WRITERS)
            ]
            for writer in writers:
                writer.start()
            deadline = time.monotonic() + 10
            while len(acknowledged) < before + 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.kill()  # SIGKILL to the whole process group, mid-write
            stop.set()
            for writer in writers:
                writer.join(timeout=15)
            assert len(acknowledged) >= before + 8, server.log()[-2000:]
            check_database(server.db_path)
            missing = acknowledged - task_titles(server.db_path)
            assert not missing, f"cycle {cycle}: acknowledged but lost: {sorted(missing)[:5]}"
        assert failures == [], f"non-303 answers under load: {failures[:10]}"
        # The app still starts and serves the surviving data.
        server.start()
        assert client.get("/tasks").status_code == 200
        assert server.terminate() == 0
    finally:
        server.kill()
    check_database(server.db_path)
