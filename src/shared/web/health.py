"""Liveness and readiness probes (SECURITY.md R9).

``/healthz``: the process answers. ``/readyz``: the database answers, takes a write lock,
accepts a write (rolled back), has room to grow, and its schema is at the migration head;
otherwise 503 with the failing check named. Liveness never depends on the database, so an
orchestrator restarting on ``/healthz`` does not crash-loop a healthy process whose disk is
full or read-only (R10, R11); readiness takes it out of rotation until the cause goes away.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from litestar import get
from litestar.datastructures import State
from litestar.response import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.config import ROOT_DIR
from shared.database.migrations import head_revision
from shared.database.serving import sqlite_file

MIN_FREE_BYTES = 1024 * 1024  # less free disk than this beside an SQLite file: not ready


@get("/healthz", opt={"public": True}, name="healthz", sync_to_thread=False)
def healthz() -> Response[dict[str, str]]:
    """200 while the process runs."""
    return Response({"status": "ok"}, headers={"cache-control": "no-store"})


@get("/readyz", opt={"public": True}, name="readyz")
async def readyz(state: State) -> Response[dict[str, object]]:
    """200 when the database is reachable, writable and at the migration head; 503 otherwise."""
    db = state.db
    checks: dict[str, str] = {}
    try:
        async with db.write_engine.connect() as conn:
            await conn.begin()  # BEGIN IMMEDIATE on SQLite: proves the write lock can be taken
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            if db.is_sqlite:
                # BEGIN IMMEDIATE succeeds on a read-only file; only an actual write tells.
                await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
                if room := await _sqlite_room(conn, sqlite_file(db.url)):
                    checks["database"] = room
            else:
                read_only = (await conn.execute(text("SHOW transaction_read_only"))).scalar()
                if read_only == "on":
                    checks["database"] = "read-only"
            await conn.rollback()
        checks.setdefault("database", "ok")
        head = await migration_head(state)
        checks["migrations"] = "ok" if version == head else f"at {version}, head is {head}"
    except Exception as exc:  # any failure is a "not ready" answer, never a 500
        checks["database"] = f"unavailable ({exc.__class__.__name__})"
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )


async def migration_head(state: State) -> str | None:
    """The newest migration's revision id, read from the scripts on first use (in a thread)
    and kept on ``state.migration_head``."""
    if state.get("migration_head") is None:
        state.migration_head = await asyncio.to_thread(head_revision, ROOT_DIR / "alembic.ini")
    return state.migration_head  # type: ignore[no-any-return]


async def _sqlite_room(conn: AsyncConnection, database_file: Path | None) -> str | None:
    """``"full"`` when the size cap (``max_page_count``) or the disk leaves no room, else None."""
    row = (
        await conn.execute(
            text(
                "SELECT p.page_count, m.max_page_count, f.freelist_count FROM pragma_page_count p,"
                " pragma_max_page_count m, pragma_freelist_count f"
            )
        )
    ).one()
    page_count, max_page_count, freelist_count = row
    if page_count - freelist_count >= max_page_count - 2:
        return "full (size cap reached)"
    if database_file is not None:
        stat = os.statvfs(database_file.parent)
        if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
            return "full (disk)"
    return None
