"""Litestar dependency that gives each request one :class:`AsyncSession` (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from shared.database.closing import close_to_completion

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READER_KEY = "slicestar.db_reader"
_WRITER_KEY = "slicestar.db_writer"


def request_reader(scope: Any) -> AsyncSession | None:
    """The session of the current request that a later read can share, or ``None``.

    That is the reader session of a safe method while its handler holds one, and the writer
    session of an unsafe method only while its transaction is still open (a form re-rendered
    with errors before anything was committed). Code that runs after the handler but before
    the response is sent (``after_request`` template context providers) reads through it, in
    the same transaction as the page, instead of taking a second pooled connection while the
    request still holds one (two per request could exhaust the small SQLite pool, see
    :func:`shared.database.engine.build_engine`). A writer whose transaction has ended is not
    shared: a read through it would begin a new write transaction (``BEGIN IMMEDIATE``)
    just to read.
    """
    session: AsyncSession | None = scope.get(_READER_KEY)
    if session is None:
        writer: AsyncSession | None = scope.get(_WRITER_KEY)
        if writer is not None and writer.in_transaction():
            return writer
    return session


async def provide_db_session(state: State, request: Request) -> AsyncGenerator[AsyncSession, None]:
    """Yield a session for this request, closed (and rolled back if uncommitted) afterwards.

    Unsafe methods get a writer session (``BEGIN IMMEDIATE`` on SQLite); safe methods a reader.
    Nothing is committed here: services commit explicitly, so a handler that returns an
    error page never commits half of its work. The close cannot be cut short by a cancelled
    request (:func:`shared.database.closing.close_to_completion`).
    """
    db = state.db
    if request.method in SAFE_METHODS:
        sessions, key = db.reader, _READER_KEY
    else:
        sessions, key = db.writer, _WRITER_KEY
    session = sessions()
    request.scope[key] = session  # type: ignore[literal-required]
    try:
        yield session
    finally:
        request.scope.pop(key, None)  # type: ignore[misc]
        await close_to_completion(session)
