"""Test fixtures: a freshly migrated database per test, the app, and an HTTP client.

The schema is migrated once per run into a template (an SQLite file; a PostgreSQL template
database when ``TEST_DATABASE_URL`` is set) and copied for every test. Tests that use the
``database_url`` fixture run once per backend.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from app import create_app
from shared.config import ROOT_DIR, Settings
from tests.pool_guard import PoolGuard
from tests.support import pg_admin_execute, pg_url_with_database

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])
SECRET_KEY = "test-secret-key-" + "x" * 40


@pytest.fixture(scope="session", autouse=True)
def server_mail_outbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Server processes the tests start (uvicorn, Granian, the CLI) inherit this environment:
    with an empty ``MAIL_URL`` they write mail here instead of the repository's ``db/mail``;
    ``tests.support`` reads their verification links from it."""
    folder = tmp_path_factory.mktemp("server-mail")
    previous = os.environ.get("MAIL_OUTBOX_DIR")
    os.environ["MAIL_OUTBOX_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("MAIL_OUTBOX_DIR", None)
    else:
        os.environ["MAIL_OUTBOX_DIR"] = previous


@pytest.fixture(autouse=True)
def no_task_holds_two_connections_of_one_pool() -> Iterator[None]:
    """Fail a test in which any task took a second connection from a pool it already held
    one of: under load that is a deadlock on the fixed pools (see :mod:`tests.pool_guard`)."""
    guard = PoolGuard()
    guard.install()
    try:
        yield
    finally:
        guard.remove()
    if guard.violations:
        pytest.fail("\n\n".join(guard.violations), pytrace=False)


def migrate(url: str, *args: str) -> None:
    """Run ``alembic <args or upgrade head>`` against ``url`` in a subprocess (as an operator would)."""
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "test", "SECRET_KEY": SECRET_KEY}
    command = [sys.executable, "-m", "alembic", *(args or ("upgrade", "head"))]
    done = subprocess.run(command, cwd=ROOT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"alembic {' '.join(command[3:])} failed:\n{done.stderr[-3000:]}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "app.sqlite"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"slicestar_tpl_{os.getpid()}"
    pg_admin_execute(
        TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'
    )
    migrate(pg_url_with_database(TEST_DATABASE_URL, name))
    yield name
    pg_admin_execute(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database for this test (one run per backend)."""
    if request.param == "sqlite":
        path = tmp_path / "app.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"slicestar_t_{uuid.uuid4().hex[:12]}"
    pg_admin_execute(TEST_DATABASE_URL, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url_with_database(TEST_DATABASE_URL, name)
    finally:
        pg_admin_execute(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        app_env="test",
        secret_key=SECRET_KEY,
        database_url=database_url,
        app_url="http://testserver.local",
        storage_dir=tmp_path / "assets",
        mail_outbox_dir=tmp_path / "mail",  # tests.support reads the links from here
        mail_retry_base_seconds=0.05,
    )


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


def make_browser(app: Litestar, port: int = 50000) -> httpx.AsyncClient:
    """An HTTP client with its own cookie jar that calls ``app`` in-process (no redirects followed)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", port)),
        base_url="http://testserver.local",
    )


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[Litestar]:
    """Run ``app``'s lifespan in its own task (entered and left there, as a server would)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # startup failed: raise its error
    try:
        yield app
    finally:
        stop.set()
        await task


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A browser against ``app``; the app's lifespan runs (in this event loop) around the test."""
    async with running(app), make_browser(app) as browser:
        yield browser


@pytest.fixture
async def browser_factory(
    app: Litestar, client: httpx.AsyncClient
) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """Make more independent browsers (own cookies) against the app ``client`` started."""
    opened: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        opened.append(make_browser(app, 50001 + len(opened)))
        return opened[-1]

    yield make
    for browser in opened:
        await browser.aclose()


@pytest.fixture
async def other_client(browser_factory: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """A second browser against the same app (another user, or the same user elsewhere)."""
    return browser_factory()
