"""Sign-up, sign-in and sign-out rules (SECURITY.md S1, S2, S5, S6, S11)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth.schemas import LoginForm, RegisterForm
from features.sessions.models import BrowserSession
from features.sessions.service import SessionService
from features.users.models import User
from features.users.service import EmailTaken, UserService
from shared.config import Settings
from shared.security.passwords import Passwords

__all__ = ["AuthService", "EmailTaken", "SignedIn"]

LOGIN_FAILED = "The email or password is incorrect."


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie ``token`` and its ``session`` row, for ``user``."""

    user: User
    token: str
    session: BrowserSession


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

    async def register(self, form: RegisterForm, client: ClientInfo) -> SignedIn:
        """Create the account and sign it in. Raises :class:`EmailTaken` (nothing written).

        The password is hashed before the write transaction starts, so the database lock
        is never held during the Argon2 computation.
        """
        password_hash = await self.passwords.hash(form.password)
        user = await self.users.create(
            name=form.name, email=form.email, password_hash=password_hash
        )
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

        Returns ``None`` for an unknown email or a wrong password alike (S5); an unknown email
        still costs one Argon2 verify (S6). A correct password whose hash has outdated
        parameters is re-hashed (S2); a failed attempt never touches the hash.
        """
        user = await self.users.by_email(form.email)
        await self.session.commit()  # end the read: no lock is held while Argon2 runs
        if not await self.passwords.verify(user.password_hash if user else None, form.password):
            return None
        assert user is not None and user.password_hash is not None
        if self.passwords.needs_rehash(user.password_hash):
            await self.users.set_password_hash(user, await self.passwords.hash(form.password))
        token, row = await self.sessions.start(
            user.id,
            remember=form.remember,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            replaces=client.previous_session,
        )
        await self.session.commit()
        return SignedIn(user=user, token=token, session=row)

    async def logout(self, session_id: uuid.UUID) -> None:
        """Delete the server-side session (S16)."""
        await self.sessions.end(session_id)
        await self.session.commit()
