"""Litestar dependency that gives each request one :class:`AsyncSession` (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def provide_db_session(state: State, request: Request) -> AsyncGenerator[AsyncSession, None]:
    """Yield a session for this request, closed (and rolled back if uncommitted) afterwards.

    Unsafe methods get a writer session (``BEGIN IMMEDIATE`` on SQLite); safe methods a reader.
    Nothing is committed here: services commit explicitly, so a handler that returns an
    error page never commits half of its work.
    """
    db = state.db
    factory = db.reader if request.method in SAFE_METHODS else db.writer
    async with factory() as session:
        yield session
