"""All SQL about sessions. The lookup on every request is one Core select joining the user."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util.concurrency import greenlet_spawn

from features.sessions.models import BrowserSession
from features.users.models import User
from shared.database import Repository
from shared.database.compiled import CompiledSelect

_s = BrowserSession.__table__
_u = User.__table__

# Session and user in one round trip (DESIGN.md §3 cost model: one query resolves both).
_LOOKUP = (
    select(
        _s.c.id,
        _s.c.user_id,
        _s.c.payload,
        _s.c.remember,
        _s.c.created_at,
        _s.c.last_activity,
        _s.c.expires_at,
        _s.c.pending_2fa_until,
        _u.c.name,
        _u.c.email,
        _u.c.role,
        _u.c.avatar_asset_id,
        _u.c.email_verified_at,
    )
    .select_from(_s.join(_u, _u.c.id == _s.c.user_id))
    .where(_s.c.token_hash == bindparam("token_hash"))
    # A disabled account has no live session, even if a row survived (SECURITY.md S19).
    .where(_u.c.disabled_at.is_(None))
)
_LOOKUP_COMPILED = CompiledSelect(_LOOKUP)


async def lookup(engine: AsyncEngine, token_hash: str) -> Any | None:
    """Return session + user columns for ``token_hash`` in one query (a named tuple with the
    fields of :data:`_LOOKUP`), or ``None``.

    Checking a connection out of ``engine``'s pool, running the select and returning the
    connection happen in one call of synchronous SQLAlchemy (:func:`_lookup`), which the
    driver suspends only for the statement itself. Through ``AsyncConnection`` each of those
    steps is a separate switch into SQLAlchemy's greenlet: about 0.1–0.15 ms more CPU on a
    request that every signed-in page makes. The select itself runs as a
    :class:`~shared.database.compiled.CompiledSelect`.
    """
    return await greenlet_spawn(_lookup, engine.sync_engine, token_hash)


def _lookup(engine: Engine, token_hash: str) -> Any | None:
    with engine.connect() as conn:  # closing it ends the statement's transaction
        rows = _LOOKUP_COMPILED.run(conn, {"token_hash": token_hash})
        return rows[0] if rows else None


async def touch(conn: AsyncConnection, session_id: uuid.UUID, when: datetime) -> None:
    """Set ``last_activity`` of one session to ``when``."""
    await conn.execute(update(_s).where(_s.c.id == session_id).values(last_activity=when))


async def delete_by_id(conn: AsyncConnection, session_id: uuid.UUID) -> None:
    """Delete one session row (expired or revoked)."""
    await conn.execute(delete(_s).where(_s.c.id == session_id))


async def delete_expired(
    conn: AsyncConnection,
    now: datetime,
    idle_cutoff: datetime,
    remember_idle_cutoff: datetime,
) -> int:
    """Delete sessions past their absolute expiry or idle since before their cutoff
    (``idle_cutoff`` for ordinary sessions, ``remember_idle_cutoff`` for "remember me" ones)."""
    stmt = delete(_s).where(
        or_(
            _s.c.expires_at < now,
            and_(_s.c.remember.is_(False), _s.c.last_activity < idle_cutoff),
            and_(_s.c.remember.is_(True), _s.c.last_activity < remember_idle_cutoff),
        )
    )
    result = await conn.execute(stmt)
    return result.rowcount or 0


class SessionRepository(Repository[BrowserSession]):
    """Sessions through the request's ORM session."""

    model = BrowserSession

    async def get_for_update(self, session_id: uuid.UUID) -> BrowserSession | None:
        """Return the session row ``session_id`` locked until the transaction ends (PostgreSQL
        ``FOR UPDATE``; SQLite writer transactions are already exclusive), or ``None``."""
        return await self.session.scalar(
            select(BrowserSession)
            .where(BrowserSession.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def delete_id(self, session_id: uuid.UUID) -> int:
        """Delete the session ``session_id``; returns rows deleted (0 or 1)."""
        result = await self.session.execute(delete(_s).where(_s.c.id == session_id))
        return result.rowcount or 0

    async def delete_for_user(
        self, user_id: uuid.UUID, *, except_id: uuid.UUID | None = None
    ) -> int:
        """Delete every session of ``user_id`` (but ``except_id``); returns rows deleted."""
        stmt = delete(_s).where(_s.c.user_id == user_id)
        if except_id is not None:
            stmt = stmt.where(_s.c.id != except_id)
        result = await self.session.execute(stmt)
        return result.rowcount or 0

    async def list_for_user(self, user_id: uuid.UUID) -> list[Row[Any]]:
        """Every session row of ``user_id`` (no token hash, no payload), newest activity first."""
        stmt = (
            select(
                _s.c.id,
                _s.c.ip_address,
                _s.c.user_agent,
                _s.c.remember,
                _s.c.created_at,
                _s.c.last_activity,
                _s.c.expires_at,
            )
            .where(_s.c.user_id == user_id, _s.c.pending_2fa_until.is_(None))
            .order_by(_s.c.last_activity.desc(), _s.c.id)
        )
        return list((await self.session.execute(stmt)).all())

    async def delete_for_owner(self, session_id: uuid.UUID, user_id: uuid.UUID) -> int:
        """Delete session ``session_id`` only if it belongs to ``user_id``; returns rows deleted."""
        result = await self.session.execute(
            delete(_s).where(_s.c.id == session_id, _s.c.user_id == user_id)
        )
        return result.rowcount or 0


def _live(now: datetime, idle_cutoff: datetime, remember_cutoff: datetime) -> Any:
    """Signed-in rows not past their absolute expiry nor idle too long, of enabled users
    (S14, S15, S19). A pending two-factor login is no session yet (S12): left out."""
    return and_(
        _s.c.pending_2fa_until.is_(None),
        _s.c.expires_at >= now,
        or_(
            and_(_s.c.remember.is_(False), _s.c.last_activity >= idle_cutoff),
            and_(_s.c.remember.is_(True), _s.c.last_activity >= remember_cutoff),
        ),
        _u.c.disabled_at.is_(None),
    )


class LiveSessionQueries(Repository[BrowserSession]):
    """Counts and lists of sessions that would still resolve (for the admin area)."""

    model = BrowserSession

    async def count_live(
        self, now: datetime, idle_cutoff: datetime, remember_cutoff: datetime
    ) -> int:
        """How many sessions are live at ``now`` (one query)."""
        stmt = (
            select(func.count())
            .select_from(_s.join(_u, _u.c.id == _s.c.user_id))
            .where(_live(now, idle_cutoff, remember_cutoff))
        )
        return int(await self.session.scalar(stmt) or 0)

    async def live_for_user(
        self, user_id: uuid.UUID, now: datetime, idle_cutoff: datetime, remember_cutoff: datetime
    ) -> list[BrowserSession]:
        """``user_id``'s live sessions, most recently active first (one query)."""
        stmt = (
            select(BrowserSession)
            .join(User, User.id == BrowserSession.user_id)
            .where(BrowserSession.user_id == user_id, _live(now, idle_cutoff, remember_cutoff))
            .order_by(BrowserSession.last_activity.desc())
        )
        return list(await self.session.scalars(stmt))
