"""``make run`` as the README starts it: the app, not the server in front of it, decides who
the client is (SECURITY.md S9), and HEAD works wherever GET does (RFC 9110 §9.3.2).

``make run`` serves with ``litestar run``, i.e. uvicorn, which by default believes
``X-Forwarded-For`` from 127.0.0.1; a local client could then pick any address and get a new
sign-in budget with every request, even with ``TRUSTED_PROXIES`` empty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from features.audit.models import AuditEvent
from shared.config import ROOT_DIR
from shared.database import Database
from tests.accounts import create_account
from tests.conftest import SECRET_KEY
from tests.support import DEFAULT_PASSWORD, csrf, mailed_link, mails_to


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_by_make_run(tmp_path: Path, **env_values: str | None) -> Iterator[tuple[str, str, Path]]:
    """``make run PORT=…`` on a new SQLite file (``env_values`` change the environment; ``None``
    removes a variable); yields ``(base URL, database URL, log file)`` (the server's stdout and
    stderr, unbuffered)."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_URL": base_url,
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "STORAGE_DIR": str(tmp_path / "assets"),
        "TRUSTED_PROXIES": "",
        "PYTHONUNBUFFERED": "1",  # the log file shows each line when it is written
    }
    env.pop("FORWARDED_ALLOW_IPS", None)  # as on a fresh machine
    for key, value in env_values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    log = tmp_path / "make-run.log"
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=ROOT_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # make, the shell and the server: one process group
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield base_url, database_url, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """``make run PORT=…`` with ``APP_URL`` set to its address (see :func:`served_by_make_run`)."""
    with served_by_make_run(tmp_path_factory.mktemp("make-run")) as served:
        yield served


async def test_s9_make_run_ignores_forwarded_for_from_a_local_client(make_run):
    base_url, database_url, _log = make_run
    db = Database(database_url)
    try:
        await create_account(db, "ann@example.com")
        async with httpx.AsyncClient(base_url=base_url) as client:
            token = await csrf(client, "/login")
            data = {
                "email": "ann@example.com",
                "password": "wrong password 1",
                "_csrf_token": token,
            }
            for n in range(5):
                forged = {"X-Forwarded-For": f"198.51.100.{n + 1}"}
                response = await client.post("/login", data=data, headers=forged)
                assert response.status_code == 422
            await asyncio.sleep(
                1.1
            )  # past the account back-off: only the (email, IP) budget is left
            forged = {"X-Forwarded-For": "198.51.100.99"}
            response = await client.post("/login", data=data, headers=forged)
            assert response.status_code == 429  # the same client, whatever it claims
        for _ in range(100):  # the audit listener writes after the response
            async with db.reader() as session:
                addresses = list(await session.scalars(select(AuditEvent.ip_address)))
            if len(addresses) >= 6:
                break
            await asyncio.sleep(0.05)
        assert len(addresses) == 6 and set(addresses) == {"127.0.0.1"}  # the socket peer
    finally:
        await db.dispose()


def test_s24_head_through_the_real_server_sends_headers_only(make_run):
    base_url, _database_url, _log = make_run
    for path, status in (("/login", 200), ("/healthz", 200), ("/static/app.css", 200)):
        get = httpx.get(base_url + path, timeout=10)
        head = httpx.head(base_url + path, timeout=10)  # what `curl -I` sends
        assert get.status_code == head.status_code == status, path
        assert head.content == b"" and get.content, path
        assert head.headers["content-type"] == get.headers["content-type"], path
    assert httpx.head(base_url + "/logout", timeout=10).status_code == 405


def test_s37_the_servers_access_log_never_shows_a_mailed_token(make_run):
    base_url, _database_url, log = make_run
    token = "Tq3v" * 10 + "x_-"  # the shape of a mailed token: 43 URL-safe characters
    paths = (
        f"/reset-password/{token}",
        f"/verify-email/{token}",
        f"/confirm-email/{token}",
        f"/login?next=/x&token={token}",
    )
    for path in paths:
        assert httpx.get(base_url + path, timeout=10).status_code in (200, 404, 410), path
    marker = "/login?probe=" + "end"
    httpx.get(base_url + marker, timeout=10)
    for _ in range(200):  # the server writes its access line after the response
        text = log.read_text()
        if '"GET /login?[redacted] HTTP/1.1" 200' in text and text.count("[redacted]") >= 5:
            break
        time.sleep(0.05)
    text = log.read_text()
    assert token not in text
    assert "probe=end" not in text
    for shown in (
        '"GET /reset-password/[redacted] HTTP/1.1"',
        '"GET /verify-email/[redacted] HTTP/1.1"',
        '"GET /confirm-email/[redacted] HTTP/1.1"',
    ):
        assert shown in text, text[-3000:]


def _app_url_in_dotenv() -> bool:
    dotenv = ROOT_DIR / ".env"
    return dotenv.exists() and "APP_URL" in dotenv.read_text()


@pytest.mark.skipif(_app_url_in_dotenv(), reason="this checkout's .env sets APP_URL")
async def test_s37_make_run_on_another_port_mails_links_to_that_port(tmp_path):
    with served_by_make_run(tmp_path, APP_URL=None) as (base_url, _database_url, log):
        async with httpx.AsyncClient(base_url=base_url) as client:
            token = await csrf(client, "/register")
            email = f"port-{base_url.rsplit(':', 1)[1]}@example.com"
            response = await client.post(
                "/register",
                data={
                    "name": "Ann",
                    "email": email,
                    "password": DEFAULT_PASSWORD,
                    "password_confirmation": DEFAULT_PASSWORD,
                    "_csrf_token": token,
                },
            )
            assert response.status_code == 303
            path = await mailed_link(client, email, "/verify-email/")
            [mail] = await mails_to(client, email)
    assert base_url + path in mail.links  # not http://127.0.0.1:8000
    assert f"mailed links use {base_url}" in log.read_text()
