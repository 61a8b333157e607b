"""Is an app serving this database? — an advisory file lock held for the app's lifetime.

Every worker process that serves an SQLite database holds a *shared* ``flock`` on
``.<database file name>.serving.lock`` beside the file, from lifespan start to shutdown.
Offline operations that must not run under a live app (``litestar db restore``) ask for an
*exclusive* lock without waiting: they get it only when no worker holds the shared one.

Why a lock and not a pid file or an HTTP probe: the kernel drops a ``flock`` when its process
dies, even on SIGKILL or OOM, so a lock can never be stale; a pid file can (and pids are
reused), and a probe of ``/healthz`` misses a server on another port or one still starting.
Limits: ``flock`` works between processes (and containers) of one host sharing the folder,
not across hosts over a network file system.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)


class DatabaseInUse(RuntimeError):
    """Raised by :func:`exclusive_lock` when an app holds the serving lock."""


def sqlite_file(database_url: str) -> Path | None:
    """The database file of an SQLite URL; ``None`` for PostgreSQL or in-memory SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve()


def lock_path(database_file: Path) -> Path:
    """``.<name>.serving.lock`` beside ``database_file``."""
    return database_file.with_name(f".{database_file.name}.serving.lock")


class ServingLock:
    """The shared lock one serving process holds; :meth:`release` drops it (idempotent)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def release(self) -> None:
        """Drop the lock and close the file."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


async def hold_serving_lock(database_url: str) -> ServingLock:
    """Take the shared serving lock for ``database_url`` (waits while a restore holds it).

    Never fails the app's start: when the lock file cannot be opened (read-only folder,
    PostgreSQL) a warning is logged and an empty lock returned (SECURITY.md R11: no crash loop).
    """
    database_file = sqlite_file(database_url)
    if database_file is None:
        return ServingLock(None)
    try:
        fd = os.open(lock_path(database_file), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        logger.warning("serving lock unavailable (%s): restore cannot detect this app", exc)
        return ServingLock(None)
    await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
    return ServingLock(fd)


@contextlib.contextmanager
def exclusive_lock(database_file: Path) -> Iterator[None]:
    """Hold the serving lock exclusively for the block; no app can start meanwhile.

    Raises :class:`DatabaseInUse` at once (without waiting) when an app is serving.
    """
    fd = os.open(lock_path(database_file), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(f"an app is serving {database_file}") from None
        yield
    finally:
        os.close(fd)


def is_serving(database_file: Path) -> bool:
    """True when an app currently holds the serving lock of ``database_file``."""
    if not lock_path(database_file).exists():
        return False
    try:
        with exclusive_lock(database_file):
            return False
    except DatabaseInUse:
        return True
