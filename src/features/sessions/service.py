"""Sessions' public face: start, resolve and end server-side sessions (SECURITY.md S10–S16).

The browser holds a 256-bit random token in an HttpOnly cookie; the database holds only its
SHA-256 (S10). A session ends when it is idle longer than the idle timeout (default 30 minutes;
the "remember me" lifetime when chosen, S14) or older than its absolute lifetime (default
12 hours; the "remember me" lifetime when chosen, S15). ``last_activity`` is written at most
once per ``session_touch_seconds`` (default 60), so read-only requests almost never write.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from features.sessions import repository
from features.sessions.models import BrowserSession
from features.sessions.repository import LiveSessionQueries, SessionRepository
from shared import clock
from shared.config import Settings
from shared.database import Database
from shared.database.types import format_timestamp, parse_timestamp
from shared.security.tokens import new_token, token_hash
from shared.web.cookies import cookie_name

logger = logging.getLogger(__name__)

USER_AGENT_MAX = 512


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """The signed-in user as the request sees it (``request.user``).

    ``avatar_id`` is the chosen avatar asset (``users.avatar_asset_id``), read by the same
    query, so the layout can show ``/avatars/<id>`` without another query. ``verified`` says
    whether ``users.email_verified_at`` is set (same query; unverified accounts see only the
    "verify your email" page, ``shared.web.guards``).
    """

    id: uuid.UUID
    name: str
    email: str
    role: str
    avatar_id: uuid.UUID | None = None
    verified: bool = False

    @property
    def is_admin(self) -> bool:
        """True when the role is ``admin`` (read with the session, so a role change applies on
        the next request, S19)."""
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The current session (``request.auth``). ``csrf_secret`` backs the CSRF token (S22)."""

    id: uuid.UUID
    user_id: uuid.UUID
    csrf_secret: str
    remember: bool
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    password_confirmed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A password-only login waiting for its two-factor challenge (``scope["pending_login"]``).

    It is not a signed-in session: ``request.user`` and ``request.auth`` stay ``None``, so it
    opens only routes that ask for it (S12). ``remember`` is the choice made at the password step.
    """

    id: uuid.UUID
    user_id: uuid.UUID
    remember: bool
    until: datetime


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A session as its owner sees it on the sessions page (no token, no CSRF secret)."""

    id: uuid.UUID
    ip_address: str | None
    user_agent: str | None
    remember: bool
    created_at: datetime
    last_activity: datetime


def session_cookie_name(settings: Settings) -> str:
    """``session``, or ``__Host-session`` over https (S13)."""
    return cookie_name("session", settings.https)


def idle_timeout(settings: Settings, remember: bool) -> timedelta:
    """How long a session may sit unused (S14)."""
    if remember:
        return timedelta(days=settings.remember_me_days)
    return timedelta(minutes=settings.session_idle_minutes)


def absolute_lifetime(settings: Settings, remember: bool) -> timedelta:
    """How long a session may live at most, used or not (S15)."""
    if remember:
        return timedelta(days=settings.remember_me_days)
    return timedelta(hours=settings.session_absolute_hours)


def cookie_max_age(settings: Settings, remember: bool) -> int | None:
    """Cookie lifetime in seconds: the remember-me lifetime, or ``None`` (ends with the browser)."""
    return int(absolute_lifetime(settings, True).total_seconds()) if remember else None


def is_expired(
    settings: Settings,
    *,
    remember: bool,
    last_activity: datetime,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """True when the session is past its absolute expiry or idle longer than its idle timeout.

    Both limits are inclusive of their last instant: at exactly ``expires_at`` the session is
    still valid, one millisecond later it is not.
    """
    return now > expires_at or now > last_activity + idle_timeout(settings, remember)


class SessionService:
    """Start and end sessions through the request's ORM session (commits nothing)."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.sessions = SessionRepository(session)

    async def start(
        self,
        user_id: uuid.UUID,
        *,
        remember: bool,
        ip_address: str | None,
        user_agent: str | None,
        replaces: uuid.UUID | None = None,
        pending_for: timedelta | None = None,
    ) -> tuple[str, BrowserSession]:
        """Create a session for ``user_id`` and return ``(cookie token, row)``.

        ``replaces`` is the id of the session the browser had before (it is deleted: the id
        rotates on every sign-in, S11). A fresh CSRF secret is drawn (S22). With
        ``pending_for`` the row is only a pending two-factor login that ends after that long
        (S12).
        """
        if replaces is not None:
            await self.sessions.delete_id(replaces)
        now = clock.now()
        token = new_token(32)
        row = BrowserSession(
            user_id=user_id,
            token_hash=token_hash(token),
            ip_address=ip_address,
            user_agent=(user_agent or "")[:USER_AGENT_MAX] or None,
            payload={"csrf": secrets.token_urlsafe(32)},
            remember=remember,
            created_at=now,
            last_activity=now,
            expires_at=now + absolute_lifetime(self.settings, remember),
        )
        if pending_for is not None:
            row.pending_2fa_until = now + pending_for
            row.expires_at = min(row.expires_at, row.pending_2fa_until)
        await self.sessions.insert(row)
        return token, row

    async def mark_password_confirmed(self, session_id: uuid.UUID, when: datetime) -> None:
        """Record that the holder of ``session_id`` re-entered their password at ``when`` (S20)."""
        row = await self.sessions.get(session_id)
        if row is not None:
            row.payload = {**row.payload, "password_confirmed_at": format_timestamp(when)}
            await self.session.flush()

    async def get_for_update(self, session_id: uuid.UUID) -> BrowserSession | None:
        """Return the row of ``session_id``, locked for this transaction, or ``None``."""
        return await self.sessions.get_for_update(session_id)

    async def end(self, session_id: uuid.UUID) -> bool:
        """Delete one session; True if it existed."""
        return await self.sessions.delete_id(session_id) > 0

    async def end_all_for_user(
        self, user_id: uuid.UUID, *, except_id: uuid.UUID | None = None
    ) -> int:
        """Delete every session of ``user_id`` except ``except_id``; returns how many ended (S18)."""
        return await self.sessions.delete_for_user(user_id, except_id=except_id)

    def _cutoffs(self, now: datetime) -> tuple[datetime, datetime, datetime]:
        return (
            now,
            now - idle_timeout(self.settings, False),
            now - idle_timeout(self.settings, True),
        )

    async def count_live(self, now: datetime | None = None) -> int:
        """How many sessions of enabled users are neither expired nor idle at ``now`` (one query)."""
        return await LiveSessionQueries(self.session).count_live(*self._cutoffs(now or clock.now()))

    async def live_for_user(
        self, user_id: uuid.UUID, now: datetime | None = None
    ) -> list[BrowserSession]:
        """``user_id``'s live sessions, most recently active first (one query)."""
        return await LiveSessionQueries(self.session).live_for_user(
            user_id, *self._cutoffs(now or clock.now())
        )

    async def end_for_owner(self, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Delete session ``session_id`` if it belongs to ``user_id``; False when it does not
        exist or is someone else's (the caller answers 404 either way, S38)."""
        return await self.sessions.delete_for_owner(session_id, user_id) > 0

    async def list_for_user(self, user_id: uuid.UUID) -> list[ActiveSession]:
        """The live (unexpired) sessions of ``user_id``, most recently active first (S17)."""
        now = clock.now()
        return [
            ActiveSession(
                id=row.id,
                ip_address=row.ip_address,
                user_agent=row.user_agent,
                remember=bool(row.remember),
                created_at=row.created_at,
                last_activity=row.last_activity,
            )
            for row in await self.sessions.list_for_user(user_id)
            if not is_expired(
                self.settings,
                remember=bool(row.remember),
                last_activity=row.last_activity,
                expires_at=row.expires_at,
                now=now,
            )
        ]

    async def rotate_after_password_change(
        self, current: SessionInfo, *, ip_address: str | None, user_agent: str | None
    ) -> tuple[str, BrowserSession]:
        """After a password change: end every other session of the user and replace the
        current one with a fresh id (S18; OWASP Session Management: renew the id on any
        privilege or credential change). Returns the new ``(cookie token, row)``; the caller
        commits and sets the cookie.
        """
        await self.end_all_for_user(current.user_id, except_id=current.id)
        return await self.start(
            current.user_id,
            remember=current.remember,
            ip_address=ip_address,
            user_agent=user_agent,
            replaces=current.id,
        )


async def resolve(
    db: Database, settings: Settings, token: str, *, touch: bool = True
) -> tuple[CurrentUser, SessionInfo] | PendingLogin | None:
    """Return who holds ``token`` and their session, or ``None`` if it is unknown or expired.

    A row that is still a pending two-factor login resolves to a :class:`PendingLogin` (never
    to a user) until its ``pending_2fa_until``; after that it is deleted like an expired one (S12).

    One read query on the hot path. An expired row is deleted on the spot; ``last_activity``
    is refreshed when it is older than ``session_touch_seconds`` unless ``touch`` is False
    (background requests such as a live-notification stream are not user activity, S14).
    """
    if not token or len(token) > 128:
        return None
    row = await repository.lookup(db.single_read_engine, token_hash(token))  # no BEGIN
    if row is None:
        return None
    now = clock.now()
    if is_expired(
        settings,
        remember=row.remember,
        last_activity=row.last_activity,
        expires_at=row.expires_at,
        now=now,
    ):
        async with db.write_engine.begin() as conn:
            await repository.delete_by_id(conn, row.id)
        return None
    if row.pending_2fa_until is not None:
        if now > row.pending_2fa_until:
            async with db.write_engine.begin() as conn:
                await repository.delete_by_id(conn, row.id)
            return None
        return PendingLogin(
            id=row.id, user_id=row.user_id, remember=bool(row.remember), until=row.pending_2fa_until
        )
    last_activity = row.last_activity
    if touch and (now - last_activity).total_seconds() >= settings.session_touch_seconds:
        try:
            async with db.write_engine.begin() as conn:
                await repository.touch(conn, row.id, now)
            last_activity = now
        except OperationalError:  # read-only, full or locked database: reads still work (R11)
            logger.warning("session touch skipped: database not writable")
    payload: dict[str, Any] = row.payload or {}
    user = CurrentUser(
        id=row.user_id,
        name=row.name,
        email=row.email,
        role=str(row.role),
        avatar_id=row.avatar_asset_id,
        verified=row.email_verified_at is not None,
    )
    info = SessionInfo(
        id=row.id,
        user_id=row.user_id,
        csrf_secret=str(payload.get("csrf", "")),
        remember=bool(row.remember),
        created_at=row.created_at,
        last_activity=last_activity,
        expires_at=row.expires_at,
        password_confirmed_at=_parse_optional(payload.get("password_confirmed_at")),
    )
    return user, info


def _parse_optional(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value) if isinstance(value, str) else None
    except ValueError:
        return None


PRUNE_EVERY_SECONDS = 600
_last_prune: list[float] = []  # monotonic time of this process's last opportunistic prune


async def prune_expired(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Delete every expired session row (absolute or idle timeout); returns how many."""
    now = now or clock.now()
    async with db.write_engine.begin() as conn:
        return await repository.delete_expired(
            conn,
            now,
            now - idle_timeout(settings, False),
            now - idle_timeout(settings, True),
        )


async def maybe_prune_expired(db: Database, settings: Settings) -> int | None:
    """:func:`prune_expired`, at most once per :data:`PRUNE_EVERY_SECONDS` per process (called
    on sign-in so the table stays small without a scheduler); ``None`` when skipped."""
    moment = time.monotonic()
    if _last_prune and moment - _last_prune[0] < PRUNE_EVERY_SECONDS:
        return None
    _last_prune[:] = [moment]
    return await prune_expired(db, settings)
