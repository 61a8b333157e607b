"""Fixtures for notification tests: a ``db`` of the test's own on the test's database.

Tests read and write through this ``Database`` of their own rather than the app's, and make
the second user (``bob``) directly in the database.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from features.users.service import UserService
from shared.database import Database
from tests.features.notifications.servers import free_port


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def add_user(db: Database, email: str, name: str = "Someone") -> uuid.UUID:
    """Insert a user who never signs in here (no password), through the users service."""
    async with db.writer() as session:
        user = await UserService(session).create(name=name, email=email, password_hash="!")
        await session.commit()
        return user.id


@pytest.fixture
async def bob(db: Database) -> uuid.UUID:
    """A second user, made directly in the database (one test client per app: see below)."""
    return await add_user(db, "bob@example.com", "Bob")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on 127.0.0.1 for this run (skipped when it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
