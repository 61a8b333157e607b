"""Optional backups inside the app: every ``BACKUP_INTERVAL_MINUTES`` (0 = off, the default)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from features.backup.service import backup_if_due
from shared.config import Settings

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 60


async def _run(settings: Settings) -> None:
    while True:
        try:
            await asyncio.to_thread(backup_if_due, settings)
        except Exception:  # a failed backup is logged and retried; it never stops the app
            logger.exception("scheduled backup failed")
        await asyncio.sleep(min(CHECK_EVERY_SECONDS, settings.backup_interval_minutes * 60))


@contextlib.asynccontextmanager
async def scheduled_backups(app: Litestar) -> AsyncIterator[None]:
    """Lifespan: run :func:`backup_if_due` in the background while the app serves (SQLite only)."""
    settings: Settings = app.state.settings
    if settings.backup_interval_minutes <= 0 or not settings.is_sqlite:
        yield
        return
    task = asyncio.create_task(_run(settings), name="scheduled-backups")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
