"""Seed a benchmark database: users with tasks and notifications, in bulk (seconds, not minutes).

The schema comes from the app's own migrations (``alembic upgrade head``); the rows are written
with the app's table definitions (so the app's column types store them exactly as the app
would) in a few multi-row ``INSERT`` statements. Every user has the same password and the
same Argon2id hash parameters as the app's defaults (SECURITY.md S1), so a benchmark login
does a real verify.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from argon2 import PasswordHasher, Type
from sqlalchemy import delete, insert
from sqlalchemy.engine import make_url

from shared import clock
from shared.config import ROOT_DIR, Settings
from shared.database import Database, new_id

PASSWORD = "bench password 4242"
SEARCH_WORD = "report"  # appears in about one title in eight (the task-list scenario)
_WORDS = (
    "write", "review", "plan", "call", "email", "fix", "draft", "update", "check", "send",
    "book", "prepare", "clean", "read", "order", "pay", "test", "ship", "design", "sort",
)  # fmt: skip
_OBJECTS = (
    "report", "invoice", "slides", "meeting notes", "budget", "roadmap", "contract", "backlog",
    "newsletter", "release", "garden", "car service", "tax return", "flights", "dentist",
    "onboarding", "backup", "website", "team lunch", "survey",
)  # fmt: skip


def email_of(index: int) -> str:
    """The email of seeded user ``index`` (0-based)."""
    return f"bench{index:03d}@example.com"


@dataclass(frozen=True, slots=True)
class SeedSize:
    """How much to seed: ``users`` × ``tasks`` tasks each, ``notifications`` per user."""

    users: int = 100
    tasks: int = 200
    notifications: int = 20


def migrate(url: str, secret_key: str) -> None:
    """Bring ``url`` to the newest schema with the app's migrations (raises on failure)."""
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "test", "SECRET_KEY": secret_key}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{done.stderr[-3000:]}")


async def recreate_postgres(url: str) -> None:
    """Drop and create the PostgreSQL database named in ``url`` (a benchmark-only database)."""
    parsed = make_url(url)
    name = parsed.database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to recreate database {name!r}: use letters, digits and _")
    admin = parsed.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_postgres(url: str) -> None:
    """Drop the PostgreSQL database named in ``url`` (after a smoke run)."""
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await conn.close()


def _password_hash() -> str:
    defaults = Settings(app_env="test", secret_key="x" * 40)
    return PasswordHasher(
        time_cost=defaults.argon2_time_cost,
        memory_cost=defaults.argon2_memory_kib,
        parallelism=defaults.argon2_parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    ).hash(PASSWORD)


def _rows(size: SeedSize, now: datetime) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(42)  # the same database every time
    password_hash = _password_hash()
    users: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for index in range(size.users):
        user_id = new_id()
        created = now - timedelta(days=90)
        users.append(
            {
                "id": user_id,
                "name": f"Bench User {index:03d}",
                "email": email_of(index),
                "password_hash": password_hash,
                "role": "user",
                "email_verified_at": created,
                "two_factor_enabled": False,
                "created_at": created,
                "updated_at": created,
            }
        )
        for _ in range(size.tasks):
            at = now - timedelta(seconds=rng.randint(60, 60 * 86400))
            tasks.append(
                {
                    "id": new_id(),
                    "user_id": user_id,
                    "title": f"{rng.choice(_WORDS).capitalize()} {rng.choice(_OBJECTS)}",
                    "status": "completed" if rng.random() < 0.4 else "pending",
                    "created_at": at,
                    "updated_at": at,
                }
            )
        for n in range(size.notifications):
            at = now - timedelta(minutes=rng.randint(1, 20 * 1440))
            notes.append(
                {
                    "id": new_id(),
                    "user_id": user_id,
                    "type": rng.choice(("info", "success", "warning", "error")),
                    "title": f"Notification {n}",
                    "message": "Something happened that you may want to look at.",
                    "link": "/tasks",
                    "data": {},
                    "read_at": at if rng.random() < 0.5 else None,
                    "created_at": at,
                }
            )
    return {"users": users, "tasks": tasks, "notifications": notes}


async def insert_rows(url: str, size: SeedSize) -> datetime:
    """Insert the seed rows into the migrated database at ``url``; returns the seed time."""
    from models import load_models

    tables = load_models().tables
    now = clock.now()
    rows = _rows(size, now)
    db = Database(url)
    try:
        async with db.write_engine.begin() as conn:
            for name in ("users", "tasks", "notifications"):
                batch = rows[name]
                for start in range(0, len(batch), 5000):
                    await conn.execute(insert(tables[name]), batch[start : start + 5000])
    finally:
        await db.dispose()
    return now


async def delete_since(url: str, since: datetime) -> None:
    """Delete the tasks and sessions a benchmark run created after ``since``.

    Runs between measured runs, so every run starts from the same data (a write scenario
    would otherwise grow the task lists the read scenarios render). Audit events and
    notifications stay: without the audit trail of earlier sign-ins every benchmark login
    would count as a new device and store a notification, which a steady state does not do.
    """
    from models import load_models

    tables = load_models().tables
    db = Database(url)
    try:
        async with db.write_engine.begin() as conn:
            await conn.execute(delete(tables["tasks"]).where(tables["tasks"].c.created_at > since))
            await conn.execute(
                delete(tables["sessions"]).where(tables["sessions"].c.created_at > since)
            )
    finally:
        await db.dispose()


def seed_sqlite(path: Path, size: SeedSize, secret_key: str) -> str:
    """Create ``path`` from scratch, migrate and seed it; returns its URL."""
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url, secret_key)
    asyncio.run(insert_rows(url, size))
    return url


def seed_postgres(url: str, size: SeedSize, secret_key: str) -> str:
    """Recreate the PostgreSQL database at ``url``, migrate and seed it; returns ``url``."""
    asyncio.run(recreate_postgres(url))
    migrate(url, secret_key)
    asyncio.run(insert_rows(url, size))
    return url


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a (checkpointed) SQLite database file."""
    for leftover in target.parent.glob(target.name + "*"):
        leftover.unlink()
    shutil.copyfile(source, target)
