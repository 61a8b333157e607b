"""Sign-up, sign-in and sign-out rules (SECURITY.md S1, S2, S5, S6, S11)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth.schemas import LoginForm, RegisterForm, password_error
from features.sessions.models import BrowserSession
from features.sessions.service import SessionInfo, SessionService
from features.users.models import User
from features.users.service import EmailTaken, UserService
from shared import clock
from shared.config import Settings
from shared.security.passwords import Passwords
from shared.web.errors import RedirectRequired
from shared.web.render import safe_next

__all__ = [
    "AuthService",
    "EmailTaken",
    "SignedIn",
    "password_error",
    "recently_confirmed",
    "requires_recent_password",
]

LOGIN_FAILED = "The email or password is incorrect."
CONFIRM_PATH = "/confirm-password"
CONFIRMATION_WINDOW = timedelta(minutes=15)  # SECURITY.md S20
PENDING_LOGIN_LIFETIME = timedelta(minutes=5)  # S12: password done, two-factor challenge due


def recently_confirmed(auth: SessionInfo | None) -> bool:
    """True when the session's holder re-entered their password within the last 15 minutes (S20)."""
    if auth is None or auth.password_confirmed_at is None:
        return False
    return clock.now() - auth.password_confirmed_at <= CONFIRMATION_WINDOW


def requires_recent_password(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    """Route guard for sensitive actions (S20): without a password confirmation in the last
    15 minutes, send the browser to the confirmation page, then back.

    For a GET the way back is the requested page; for a POST it is the page the form was on
    (the same-origin ``Referer``), since a POST cannot be replayed by a redirect.
    """
    if recently_confirmed(connection.scope.get("auth")):
        return
    if connection.scope["method"] == "GET":
        back = connection.url.path + (f"?{connection.url.query}" if connection.url.query else "")
    else:
        referer = urlsplit(connection.headers.get("referer", ""))
        own = connection.headers.get("host", "")
        back = referer.path if referer.netloc == own and referer.path else "/settings"
    raise RedirectRequired(f"{CONFIRM_PATH}?next={quote(safe_next(back, '/settings'), safe='/')}")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie ``token`` and its ``session`` row, for ``user``.

    With ``two_factor_pending`` the row is only a pending login: the challenge comes next (S12).
    """

    user: User
    token: str
    session: BrowserSession
    two_factor_pending: bool = False


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a sign-in comes from; ``previous_session`` is the browser's old session id, if any."""

    ip_address: str | None
    user_agent: str | None
    previous_session: uuid.UUID | None = None


class AuthService:
    """Register and authenticate users; every method commits its own writes."""

    def __init__(self, session: AsyncSession, settings: Settings, passwords: Passwords) -> None:
        self.session = session
        self.passwords = passwords
        self.users = UserService(session)
        self.sessions = SessionService(session, settings)
        self.attempted_user_id: uuid.UUID | None = None  # set by login(), for the audit trail

    async def register(self, form: RegisterForm, client: ClientInfo) -> SignedIn:
        """Create the account and sign it in. Raises :class:`EmailTaken` (nothing written).

        The password is hashed before the write transaction starts, so the database lock
        is never held during the Argon2 computation.
        """
        password_hash = await self.passwords.hash(form.password)
        user = await self.users.create(
            name=form.name, email=form.email, password_hash=password_hash
        )
        user.last_login_at = user.created_at  # signing up signs in
        token, row = await self.sessions.start(
            user.id,
            remember=False,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            replaces=client.previous_session,
        )
        await self.session.commit()
        return SignedIn(user=user, token=token, session=row)

    async def login(self, form: LoginForm, client: ClientInfo) -> SignedIn | None:
        """Check the credentials; on success start a new session (S11) and return it.

        Returns ``None`` for an unknown email, a wrong password or a disabled account alike
        (S5, S19); an unknown email still costs one Argon2 verify (S6). A correct password whose
        hash has outdated parameters is re-hashed (S2); a failed attempt never touches the hash.
        A success stamps ``users.last_login_at``. For a user with two-factor authentication on,
        the new session is only a pending login that opens nothing but the challenge for
        5 minutes (S12); the re-hash still happens here, first.
        """
        user = await self.users.by_email(form.email)
        self.attempted_user_id = user.id if user else None
        await self.session.commit()  # end the read: no lock is held while Argon2 runs
        if not await self.passwords.verify(user.password_hash if user else None, form.password):
            return None
        assert user is not None and user.password_hash is not None
        if user.disabled_at is not None:  # same answer as a wrong password (S5, S19)
            return None
        user.last_login_at = clock.now()
        if self.passwords.needs_rehash(user.password_hash):
            await self.users.set_password_hash(user, await self.passwords.hash(form.password))
        return await self.start_session(user, remember=form.remember, client=client)

    async def start_session(self, user: User, *, remember: bool, client: ClientInfo) -> SignedIn:
        """Start the session of an authenticated ``user`` (new id, S11) and commit.

        Every sign-in path (password, and OAuth when it exists) ends here, so a user with
        two-factor authentication on gets only a pending login that opens nothing but the
        challenge for 5 minutes (S12, S32).
        """
        token, row = await self.sessions.start(
            user.id,
            remember=remember,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            replaces=client.previous_session,
            pending_for=PENDING_LOGIN_LIFETIME if user.two_factor_enabled else None,
        )
        await self.session.commit()
        return SignedIn(
            user=user, token=token, session=row, two_factor_pending=user.two_factor_enabled
        )

    async def confirm_password(
        self, user_id: uuid.UUID, session_id: uuid.UUID, password: str
    ) -> bool:
        """Check ``password`` for the signed-in user and, if right, stamp the session (S20)."""
        user = await self.users.get(user_id)
        await self.session.commit()  # no lock held while Argon2 runs
        if not await self.passwords.verify(user.password_hash if user else None, password):
            return False
        await self.sessions.mark_password_confirmed(session_id, clock.now())
        await self.session.commit()
        return True

    async def logout(self, session_id: uuid.UUID) -> None:
        """Delete the server-side session (S16)."""
        await self.sessions.end(session_id)
        await self.session.commit()
