"""Litestar dependency that gives each request one :class:`AsyncSession` (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READER_KEY = "slicestar.db_reader"


def request_reader(scope: Any) -> AsyncSession | None:
    """The read-only session of the current request, while its handler holds one; else ``None``.

    Code that runs after the handler but before the response is sent (``after_request``
    template context providers) reads through it, in the same transaction as the page,
    instead of opening a second session. Writer sessions are never shared: a read after
    their commit would begin a new write transaction (``BEGIN IMMEDIATE``) just to read.
    """
    return scope.get(_READER_KEY)  # type: ignore[no-any-return]


async def provide_db_session(state: State, request: Request) -> AsyncGenerator[AsyncSession, None]:
    """Yield a session for this request, closed (and rolled back if uncommitted) afterwards.

    Unsafe methods get a writer session (``BEGIN IMMEDIATE`` on SQLite); safe methods a reader.
    Nothing is committed here: services commit explicitly, so a handler that returns an
    error page never commits half of its work.
    """
    db = state.db
    if request.method not in SAFE_METHODS:
        async with db.writer() as session:
            yield session
        return
    async with db.reader() as session:
        request.scope[_READER_KEY] = session  # type: ignore[literal-required]
        try:
            yield session
        finally:
            request.scope.pop(_READER_KEY, None)  # type: ignore[misc]
