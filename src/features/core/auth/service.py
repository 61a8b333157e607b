"""Sign-up, email verification, sign-in, sign-out and password reset rules
(SECURITY.md S1, S2, S5–S8, S11, S18, S33–S37)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from urllib.parse import quote, urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from features.core.auth import mails
from features.core.auth.models import TokenKind
from features.core.auth.schemas import LoginForm, RegisterForm, password_error
from features.core.auth.tokens import EmailTokens, TokenRefused
from features.sessions.models import BrowserSession
from features.sessions.service import SessionInfo, SessionService
from features.users.models import User
from features.users.service import EmailTaken, UserNotFound, UserService, find_by_email
from shared import clock
from shared.config import Settings
from shared.mail import Mailer
from shared.security.passwords import Passwords
from shared.web.errors import RedirectRequired
from shared.web.render import safe_next

__all__ = [
    "AuthService",
    "EmailTaken",
    "EmailTokens",
    "Registration",
    "ResetMailResult",
    "SignedIn",
    "TokenKind",
    "TokenRefused",
    "mails",
    "password_error",
    "recently_confirmed",
    "requires_recent_password",
    "send_password_reset",
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


async def requires_recent_password(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
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
class Registration:
    """The outcome of a sign-up: a new ``user`` and its verification ``token``, or ``taken``
    (the address belongs to ``user`` already; nothing was written, S7)."""

    user: User
    token: str | None
    taken: bool


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
        self.tokens = EmailTokens(session)
        self.attempted_user_id: uuid.UUID | None = None  # set by login(), for the audit trail

    async def register(self, form: RegisterForm) -> Registration:
        """Create the (unverified) account and its 24-hour verification token, and commit.

        Nobody is signed in: the link in the verification mail does that. A taken address
        writes nothing and returns the existing owner with ``taken=True``, after the same
        Argon2 work, so the answer cannot tell the two apart (S7). The password is hashed
        before the write transaction starts, so the database lock is never held during Argon2.
        """
        password_hash = await self.passwords.hash(form.password)
        try:
            user = await self.users.create(
                name=form.name, email=form.email, password_hash=password_hash
            )
        except EmailTaken:
            await self.session.rollback()
            owner = await self.users.by_email(form.email)
            await self.session.commit()
            if owner is None:  # deleted in between: extremely unlikely, try once more
                return await self.register(form)
            return Registration(user=owner, token=None, taken=True)
        token = await self.tokens.issue(user.id, TokenKind.VERIFY_EMAIL, user.email)
        await self.session.commit()
        return Registration(user=user, token=token, taken=False)

    async def new_verification_token(self, user_id: uuid.UUID) -> tuple[User, str] | None:
        """A fresh verification token for an unverified account (the older one dies), committed;
        ``None`` when the account is verified already or gone."""
        user = await self.users.get(user_id)
        if user is None or user.email_verified_at is not None:
            await self.session.commit()
            return None
        token = await self.tokens.issue(user.id, TokenKind.VERIFY_EMAIL, user.email)
        await self.session.commit()
        return user, token

    async def verify_email(self, raw_token: str, client: ClientInfo) -> SignedIn:
        """Use a verification link: mark the address verified and sign its owner in (a new
        session id, S11; the two-factor challenge first when it is on, S12). Commits.

        Raises :class:`TokenRefused` for a link that is invalid, used, expired, superseded or
        sent to an address the account no longer has (S33, S34, S37), or whose account is
        disabled (nothing is changed then).
        """
        row = await self.tokens.consume(raw_token, TokenKind.VERIFY_EMAIL)
        user = await self.users.get(row.user_id)
        if user is None or user.disabled_at is not None:
            await self.session.rollback()
            raise TokenRefused("invalid")
        now = clock.now()
        if user.email_verified_at is None:
            user.email_verified_at = now
        user.last_login_at = now
        return await self.start_session(user, remember=False, client=client)

    async def request_password_reset(self, email: str) -> tuple[User, str] | None:
        """A 60-minute reset token for the account of ``email``, committed; ``None`` for an
        unknown address or a disabled account (the caller answers the same either way, S8)."""
        user = await self.users.by_email(email)
        if user is None or user.disabled_at is not None:
            await self.session.commit()
            return None
        token = await self.tokens.issue(user.id, TokenKind.RESET_PASSWORD, user.email)
        await self.session.commit()
        return user, token

    async def check_reset_token(self, raw_token: str) -> User:
        """The account a live reset link belongs to (nothing changes). Raises :class:`TokenRefused`."""
        row = await self.tokens.check(raw_token, TokenKind.RESET_PASSWORD)
        user = await self.users.get(row.user_id)
        await self.session.commit()
        if user is None or user.disabled_at is not None:
            raise TokenRefused("invalid")
        return user

    async def reset_password(self, raw_token: str, new_password: str) -> User:
        """Use a reset link: set ``new_password`` (already checked against S3), end every session
        of the account (S18, S36), discard its pending email-change links, sign nobody in;
        commits and returns the user.

        Following the link proves the address, so an unverified account becomes verified.
        Raises :class:`TokenRefused` (nothing changes). The password is hashed before the write
        transaction, and the token is consumed atomically after it (S33, R3).
        """
        await self.check_reset_token(raw_token)
        password_hash = await self.passwords.hash(new_password)
        row = await self.tokens.consume(raw_token, TokenKind.RESET_PASSWORD)
        user = await self.users.get(row.user_id)
        if user is None or user.disabled_at is not None:
            await self.session.rollback()
            raise TokenRefused("invalid")
        await self.users.set_password_hash(user, password_hash)
        if user.email_verified_at is None:
            user.email_verified_at = clock.now()
        await self.sessions.end_all_for_user(user.id)
        # A pending email-change link may belong to whoever the reset locks out: it dies too,
        # in the same transaction, or it would hand them the account back later (S18, S36).
        await self.tokens.discard(user.id, TokenKind.CHANGE_EMAIL)
        await self.session.commit()
        return user

    async def password_reset_for(self, user_id: uuid.UUID) -> tuple[User, str] | None:
        """A reset token for ``user_id`` (an administrator's action), committed; ``None`` for a
        disabled account. Raises :class:`UserNotFound`."""
        user = await self.users.get(user_id)
        if user is None:
            await self.session.commit()
            raise UserNotFound(user_id)
        if user.disabled_at is not None:
            await self.session.commit()
            return None
        token = await self.tokens.issue(user.id, TokenKind.RESET_PASSWORD, user.email)
        await self.session.commit()
        return user, token

    async def login(
        self, form: LoginForm, client: ClientInfo, *, reads: AsyncEngine
    ) -> SignedIn | None:
        """Check the credentials; on success start a new session (S11) and return it.

        Returns ``None`` for an unknown email, a wrong password or a disabled account alike
        (S5, S19); an unknown email still costs one Argon2 verify (S6). A correct password whose
        hash has outdated parameters is re-hashed (S2); a failed attempt never touches the hash.
        A success stamps ``users.last_login_at``. For a user with two-factor authentication on,
        the new session is only a pending login that opens nothing but the challenge for
        5 minutes (S12); the re-hash still happens here, first.

        The account is looked up through ``reads`` (pass ``Database.single_read_engine``): one
        SELECT outside any transaction, so no lock is held while Argon2 runs. The one write
        transaction (sign-in stamp and new session) then checks that the password hash is still
        the one verified and the account still enabled; when a password reset or a disabling
        came in between, nothing is written and the answer is ``None``, as for a wrong password
        (S18, S19).
        """
        user = await find_by_email(reads, form.email)
        self.attempted_user_id = user.id if user else None
        if not await self.passwords.verify(user.password_hash if user else None, form.password):
            return None
        assert user is not None and user.password_hash is not None
        if user.disabled_at is not None:  # same answer as a wrong password (S5, S19)
            return None
        new_hash = None
        if self.passwords.needs_rehash(user.password_hash):
            new_hash = await self.passwords.hash(form.password)
        stamped = await self.users.stamp_sign_in(
            user, checked_hash=user.password_hash, when=clock.now(), new_hash=new_hash
        )
        if not stamped:
            await self.session.rollback()
            return None
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


ResetMailResult = Literal["queued", "disabled", "not_sent"]


async def send_password_reset(
    session: AsyncSession,
    settings: Settings,
    passwords: Passwords,
    mailer: Mailer,
    user_id: uuid.UUID,
) -> ResetMailResult:
    """Mail ``user_id`` a password-reset link on an administrator's behalf.

    Returns ``"queued"`` when the mail was handed to the delivery queue, ``"disabled"`` for a
    disabled account (no link, no mail, S19), ``"not_sent"`` when the mailer refused the mail
    (an address or name a header cannot carry, a template error, the mailer not running; the
    reason is in the log, and the link issued is useless since nobody received it).
    Raises :class:`UserNotFound`.
    """
    issued = await AuthService(session, settings, passwords).password_reset_for(user_id)
    if issued is None:
        return "disabled"
    user, token = issued
    if not mails.reset_password(mailer, user.email, user.name, token, by_admin=True):
        return "not_sent"
    return "queued"
