"""Graceful failure with the real server process (SECURITY.md R8, R9, R10, R11, R12).

Each test starts Granian on a copy of the migrated database, breaks something the way
production breaks (SIGTERM mid-request, a lock held by another process, a full database, a
read-only file) and checks what a person and a load balancer see: 503 pages instead of hangs
or crashes, ``/readyz`` failing while ``/healthz`` stays up, and recovery once the cause is gone.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.ops.server import (
    AppProcess,
    check_database,
    read_only_file,
    signed_in_client,
    task_titles,
)
from tests.support import csrf_from


def _create_task(client: httpx.Client, token: str, title: str) -> httpx.Response:
    return client.post("/tasks", data={"title": title, "_csrf_token": token})


def _hold_write_lock(db_path: Path) -> sqlite3.Connection:
    """Another process's writer: ``BEGIN IMMEDIATE`` held until the caller rolls back."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_r8_sigterm_finishes_in_flight_request_checkpoints_and_exits_0(ops_dir: Path) -> None:
    server = AppProcess(ops_dir)
    server.start()
    client, token = signed_in_client(server, "r8@example.com")
    lock = _hold_write_lock(server.db_path)  # the POST below waits on the busy timeout
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(_create_task, client, token, "written during shutdown")
        time.sleep(0.5)  # the request is inside the app, waiting for the lock
        assert not in_flight.done()
        server.process.send_signal(15)  # SIGTERM, as `docker stop` sends
        time.sleep(0.5)
        lock.rollback()
        lock.close()
        response = in_flight.result(timeout=15)
    assert response.status_code == 303, response.text
    assert server.process.wait(timeout=20) == 0, server.log()
    # The engine was disposed after a TRUNCATE checkpoint: nothing is left in the WAL.
    wal = server.db_path.with_name("app.sqlite-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert "written during shutdown" in task_titles(server.db_path)
    check_database(server.db_path)


def test_r8_a_request_still_running_after_the_graceful_timeout_is_cut_off_and_the_server_exits(
    ops_dir: Path,
) -> None:
    kill_timeout = 2  # GRACEFUL_TIMEOUT, short for the test (20 s in the image)
    server = AppProcess(ops_dir, kill_timeout=kill_timeout)
    server.start()
    client, _ = signed_in_client(server, "slow@example.com")
    token = csrf_from(client.get("/assets").text)
    cookies = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
    boundary = "SlowClient0123"
    head = (
        f"POST /assets HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nCookie: {cookies}\r\n"
        f"X-CSRF-Token: {token}\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Content-Length: 1000000\r\n\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.txt"\r\n\r\n'
    ).encode()
    # A client that sends its upload a byte every 0.1 s: it would need hours to finish.
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head)
    stop = threading.Event()

    def trickle() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                sock.sendall(b"x")
                time.sleep(0.1)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(1)  # the upload is inside the handler, reading
        sent_at = time.monotonic()
        server.process.send_signal(15)  # SIGTERM, as `docker stop` sends
        exit_code = server.process.wait(timeout=kill_timeout + 20)
        took = time.monotonic() - sent_at
        sock.settimeout(5)
        answer = sock.recv(65536)  # b"" (closed) or a reset: never an HTTP answer
    except ConnectionResetError:
        answer = b""
    finally:
        stop.set()
        sender.join(timeout=5)
        sock.close()
        server.kill()
    assert exit_code == 0, server.log()[-2000:]
    assert answer == b""
    assert "Killing worker-1 after it refused to gracefully stop" in server.log()
    # Bounded: the request got its graceful period, then the worker was killed; a generous
    # margin above the timeout covers a busy machine (the point is "not until the client ends").
    assert kill_timeout - 0.5 <= took < kill_timeout + 10, took
    check_database(server.db_path)


def test_r12_write_lock_held_elsewhere_gives_503_not_a_hang(ops_dir: Path) -> None:
    server = AppProcess(ops_dir)
    server.start()
    try:
        client, token = signed_in_client(server, "r12@example.com")
        lock = _hold_write_lock(server.db_path)
        try:
            with ThreadPoolExecutor(2) as pool:
                write = pool.submit(_create_task, client, token, "blocked")
                ready = pool.submit(httpx.get, f"{server.base_url}/readyz", timeout=30)
                # Reads go on meanwhile (WAL readers never wait for the writer).
                listing = client.get("/tasks")
                assert listing.status_code == 200
                response = write.result(timeout=20)  # the busy timeout is 5 s
                readiness = ready.result(timeout=20)
        finally:
            lock.rollback()
            lock.close()
        assert response.status_code == 503
        assert "Service unavailable" in response.text
        assert response.headers["retry-after"] == "5"
        assert "Traceback" not in response.text and "sqlite" not in response.text.lower()
        assert readiness.status_code == 503
        assert "unavailable" in readiness.json()["checks"]["database"]
        assert "blocked" not in task_titles(server.db_path)
        # The lock is gone: the app recovers by itself.
        assert _create_task(client, token, "after the lock").status_code == 303
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
        assert server.alive()
    finally:
        server.terminate()
    assert task_titles(server.db_path) == {"after the lock"}


def test_r10_full_database_gives_503_and_recovers_when_space_returns(ops_dir: Path) -> None:
    server = AppProcess(ops_dir, DATABASE_MAX_SIZE_MB="1")
    server.start()
    try:
        client, token = signed_in_client(server, "r10@example.com")
        # Another process fills the file up to the app's cap (1 MiB = 256 pages of 4 KiB).
        filler = sqlite3.connect(server.db_path, isolation_level=None)
        filler.execute("CREATE TABLE filler (b BLOB)")
        while filler.execute("PRAGMA page_count").fetchone()[0] < 256:
            filler.execute("INSERT INTO filler VALUES (randomblob(3500))")
        acknowledged, refused = [], None
        for n in range(300):
            response = _create_task(client, token, f"task {n}")
            if response.status_code == 303:
                acknowledged.append(f"task {n}")
                continue
            refused = (f"task {n}", response)
            break
        assert refused is not None, "the cap was never reached"
        title, response = refused
        assert response.status_code == 503
        assert "Service unavailable" in response.text
        readiness = httpx.get(f"{server.base_url}/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["checks"]["database"].startswith("full")
        assert client.get("/tasks").status_code == 200  # reads still work
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200
        # Space returns (the filler goes): writes and readiness come back without a restart.
        filler.execute("DROP TABLE filler")
        filler.close()
        assert _create_task(client, token, "after space returned").status_code == 303
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
    finally:
        assert server.terminate() == 0
    titles = task_titles(server.db_path)
    assert title not in titles  # nothing half-written
    assert titles == {*acknowledged, "after space returned"}
    check_database(server.db_path)


def test_r11_read_only_database_serves_reads_refuses_writes_and_recovers(ops_dir: Path) -> None:
    server = AppProcess(ops_dir, SESSION_TOUCH_SECONDS="0")  # every request is due a touch
    server.start()
    client, token = signed_in_client(server, "r11@example.com")
    _create_task(client, token, "before read-only")
    assert server.terminate() == 0
    try:
        # e.g. a restore with the wrong owner, or a volume mounted read-only
        with read_only_file(server.db_path):
            server.start()
            listing = client.get("/tasks")
            assert listing.status_code == 200
            assert "before read-only" in listing.text
            response = _create_task(client, token, "refused")
            assert response.status_code == 503
            assert "Service unavailable" in response.text
            readiness = httpx.get(f"{server.base_url}/readyz")
            assert readiness.status_code == 503
            assert httpx.get(f"{server.base_url}/healthz").status_code == 200
            assert server.alive()  # no crash loop
        # The cause goes away: the same process recovers.
        assert _create_task(client, token, "after").status_code == 303
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
    finally:
        server.terminate()
    assert task_titles(server.db_path) == {"before read-only", "after"}


def test_request_log_is_one_json_line_per_request_without_secrets(ops_dir: Path) -> None:
    server = AppProcess(ops_dir)
    server.start()
    try:
        client, token = signed_in_client(server, "logs@example.com")
        client.get("/tasks?q=secret-search", headers={"x-request-id": "req-ops-12345"})
        client.get("/no/such/page")
        reset = "A" * 43
        client.get(f"/reset/{reset}")
    finally:
        server.terminate()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry["logger"] == "slicestar.access"]
    by_id = {entry["request_id"]: entry for entry in access}
    entry = by_id["req-ops-12345"]
    assert entry["method"] == "GET" and entry["path"] == "/tasks" and entry["status"] == 200
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["user_id"]  # the signed-in user's id
    assert any(e["path"] == "/no/such/page" and e["status"] == 404 for e in access)
    assert any(e["path"] == "/reset/[redacted]" for e in access)
    text = server.log()
    cookie_values = [c.value for c in client.cookies.jar]
    assert cookie_values and not any(value in text for value in cookie_values)
    for secret in (token, reset, "secret-search", "correct horse"):
        assert secret not in text


@pytest.mark.parametrize("js", [True, False], ids=["streamed", "form"])
def test_an_upload_the_client_aborts_is_logged_as_499_not_as_a_server_error(
    ops_dir: Path, js: bool
) -> None:
    server = AppProcess(ops_dir)
    server.start()
    try:
        client, _ = signed_in_client(server, "abort@example.com")
        token = csrf_from(client.get("/assets").text)
        boundary = "AbortedUpload0123"
        fields = (
            ""
            if js
            else (
                f'--{boundary}\r\nContent-Disposition: form-data; name="_csrf_token"\r\n\r\n'
                f"{token}\r\n"
            )
        )
        start = (
            f"{fields}--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode() + b"x" * 200_000
        cookies = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
        head = (
            "POST /assets HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            f"Cookie: {cookies}\r\n"
            + (f"X-CSRF-Token: {token}\r\nAccept: application/json\r\n" if js else "")
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Content-Length: 5000000\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + start)  # then the browser tab is closed: 4.8 MB never come
            time.sleep(0.5)
        deadline = time.monotonic() + 10
        while not [e for e in _access(server) if e["path"] == "/assets" and e["method"] == "POST"]:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.05)
        assert client.get("/assets").status_code == 200  # the server is fine
    finally:
        server.terminate()
    [entry] = [e for e in _access(server) if e["path"] == "/assets" and e["method"] == "POST"]
    assert entry["status"] == 499 and entry["client_disconnected"] is True, entry
    assert entry["message"] == "POST /assets 499 client disconnected"
    assert entry["user_id"]
    completed = [e for e in _access(server) if e["path"] == "/assets" and e["method"] == "GET"]
    assert completed and all("client_disconnected" not in e for e in completed)
    assert "Traceback" not in server.log() and "unhandled error" not in server.log()
    incoming = ops_dir / "assets" / ".incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []  # no work file left


def _access(server: AppProcess) -> list[dict]:
    """The request log lines (JSON) the server wrote so far."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [entry for entry in lines if entry["logger"] == "slicestar.access"]
