"""Alembic environment: async, reads ``DATABASE_URL``, sees every feature's tables (DESIGN.md §4).

On SQLite, foreign keys are switched off on the raw connection before any transaction (a
batch table copy would otherwise fire ``ON DELETE CASCADE``), and ``PRAGMA foreign_key_check``
must come back empty at the end or the migration fails.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from models import load_models
from shared.config import get_settings

config = context.config
target_metadata = load_models()


def database_url() -> str:
    """``-x url=…`` on the command line, else ``DATABASE_URL`` (via settings)."""
    return context.get_x_argument(as_dictionary=True).get("url") or get_settings().database_url


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our TypeDecorators with an import, so generated revisions run."""
    if type_ == "type" and obj.__class__.__module__ == "shared.database.types":
        autogen_context.imports.add("import shared.database.types")
        return f"shared.database.types.{obj.__class__.__name__}()"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL for ``DATABASE_URL``'s dialect instead of
    running it (batch mode, literal values, the custom column types rendered)."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    if is_sqlite:
        # Outside any transaction, on the raw DBAPI connection: inside BEGIN it is a no-op.
        raw_cursor = connection.connection.cursor()
        raw_cursor.execute("PRAGMA foreign_keys=OFF")
        raw_cursor.execute("PRAGMA journal_mode=WAL")
        raw_cursor.execute("PRAGMA busy_timeout=5000")
        raw_cursor.close()
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
        if is_sqlite:
            problems = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if problems:
                raise RuntimeError(f"foreign key check failed after migration: {problems[:5]}")


async def run_migrations_online() -> None:
    """Run the migrations on ``DATABASE_URL`` over one async connection (no pool). On SQLite,
    foreign keys are off for the run and ``PRAGMA foreign_key_check`` must come back empty
    before the transaction commits (DESIGN.md §4)."""
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
