"""Liveness and readiness probes (SECURITY.md R9).

``/healthz``: the process answers. ``/readyz``: the database answers, takes a write lock, and
its schema is at the migration head; otherwise 503 with the failing check named.
"""

from __future__ import annotations

from litestar import get
from litestar.datastructures import State
from litestar.response import Response
from sqlalchemy import text


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
            if not db.is_sqlite:
                read_only = (await conn.execute(text("SHOW transaction_read_only"))).scalar()
                if read_only == "on":
                    checks["database"] = "read-only"
            await conn.rollback()
        checks.setdefault("database", "ok")
        checks["migrations"] = (
            "ok"
            if version == state.migration_head
            else f"at {version}, head is {state.migration_head}"
        )
    except Exception as exc:  # any failure is a "not ready" answer, never a 500
        checks["database"] = f"unavailable ({exc.__class__.__name__})"
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )
