"""Process helpers for the operations tests: the production server (Granian) on 127.0.0.1,
serving a copy of the migrated template database in its own folder.

``AppProcess`` starts ``python -OO -m granian --interface asgi --factory app:create_app`` (the
command ``docker/entrypoint.sh`` runs) in its own process group, waits for ``/healthz``, and
stops it with SIGTERM (graceful) or SIGKILL (the whole group, as ``docker kill`` would).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from shared.config import ROOT_DIR
from shared.mail import read_outbox
from tests.conftest import SECRET_KEY
from tests.support import csrf_from

SRC = ROOT_DIR / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppProcess:
    """One Granian server process (1 worker) for the database in ``folder/app.sqlite``;
    ``kill_timeout`` seconds after SIGTERM a worker still busy is killed."""

    def __init__(self, folder: Path, *, kill_timeout: int = 10, **env: str) -> None:
        self.folder = folder
        self.kill_timeout = kill_timeout  # Granian's --workers-kill-timeout (GRACEFUL_TIMEOUT)
        self.db_path = folder / "app.sqlite"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "APP_ENV": "production",
            "APP_URL": self.base_url,
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            "STORAGE_DIR": str(folder / "assets"),
            "BACKUP_DIR": str(folder / "backups"),
            # Production refuses to start without MAIL_URL: keep mail in a folder on purpose.
            "MAIL_URL": f"file://{folder / 'mail'}",
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        self.log_path = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until ``/healthz`` answers 200."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-OO",  # as docker/entrypoint.sh serves
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--factory",
                "app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--workers-kill-timeout",
                str(self.kill_timeout),
            ],
            cwd=SRC,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM the server (as ``docker stop`` does) and return its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the server's group (no shutdown code runs)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        # The workers die with the group; once nothing listens on the port, none is left
        # running (a killed worker may linger as a zombie, which holds no files).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def ops_folder(sqlite_template: Path, folder: Path) -> Path:
    """``folder`` with a migrated copy of the database (``app.sqlite``), for one server."""
    shutil.copyfile(sqlite_template, folder / "app.sqlite")
    return folder


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """Make ``path`` read-only for the block (the folder stays writable, as for ``-wal``).

    Root ignores mode bits, so as root the file is bind-mounted read-only onto itself (like
    a read-only volume); otherwise its mode becomes 0444. Yields once it is read-only.
    """
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            # SQLite gave any -wal/-shm it created meanwhile the file's mode: fix them too.
            for file in path.parent.glob(f"{path.name}*"):
                file.chmod(0o644)
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        # Lazy: the server may still hold the file open; new opens see the writable file.
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def mailed_link(folder: Path, email: str, path: str, timeout: float = 10) -> str:
    """The path of the newest ``path…`` link mailed to ``email`` in ``folder`` (the server's
    ``MAIL_URL=file://`` outbox); waits for the mail up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for message in read_outbox(folder, limit=10_000):
            if f"<{email}>" in message.to:
                for link in message.links:
                    _, _, rest = link.partition("://")
                    local = "/" + rest.partition("/")[2]
                    if local.startswith(path):
                        return local
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path} mail to {email} in {folder}")
        time.sleep(0.05)


def signed_in_client(server: AppProcess, email: str) -> tuple[httpx.Client, str]:
    """Register ``email`` on the server and follow the mailed verification link; return the
    signed-in client and its CSRF token."""
    client = httpx.Client(base_url=server.base_url, timeout=30, follow_redirects=False)
    token = csrf_from(client.get("/register").text)
    response = client.post(
        "/register",
        data={
            "name": "Ops User",
            "email": email,
            "password": "correct horse battery staple",
            "password_confirmation": "correct horse battery staple",
            "_csrf_token": token,
        },
    )
    assert response.status_code == 303, response.text
    link = mailed_link(server.folder / "mail", email, "/verify-email/")
    page = client.get(link)
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token, page.text
    response = client.post(
        "/verify-email/confirm",
        data={"token": token.group(1), "_csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    return client, csrf_from(client.get("/tasks").text)


def signed_in_with_password(base_url: str, email: str, password: str) -> httpx.Client:
    """Sign ``email`` in through the login form; return the signed-in client (asserts 303)."""
    client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": token}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard", response.headers["location"]
    return client


def task_titles(db_path: Path) -> set[str]:
    """Every task title in the database (read with plain sqlite3, after the server stopped)."""
    conn = sqlite3.connect(db_path)
    try:
        return {row[0] for row in conn.execute("SELECT title FROM tasks")}
    finally:
        conn.close()


def check_database(db_path: Path) -> None:
    """``integrity_check`` is ok and ``foreign_key_check`` finds nothing (SECURITY.md R4)."""
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
