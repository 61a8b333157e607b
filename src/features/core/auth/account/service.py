"""Account settings rules: name, email change, password change, account deletion.

- Email change (S20, S37): the new address gets a 24-hour link; the address changes only when
  the link is used, and the old address gets a notice then. The new address equal to the
  current one is an input error; a taken one gets the same answer as a free one (nothing is
  written, its owner gets a notice instead: no enumeration). Using the link verifies the new
  address and kills every verification and reset link of the old one.
- Undoing an email change: the notice to the old address carries a 7-day single-use link that
  gives the account its old address back, signs every session out, removes the password and
  every other pending link (a takeover's password and links must not outlive the remedy) and
  mails a reset link to the restored address. Password changes and resets leave undo links
  alone: whoever changed the address must not be able to cancel its remedy.
- Password change (S3, S4, S18): the current password is required; the new one follows the
  password rules; every other session ends and the current one gets a new id; pending reset
  and email-change links die (a password reset discards pending email-change links as well).
- Deletion (S20): the account and everything it owns go (``ON DELETE CASCADE``; stored files
  through the ``user_deleted`` event); the last enabled administrator cannot delete themself.

Every method commits its own writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth.models import TokenKind
from features.core.auth.service import ClientInfo
from features.core.auth.tokens import EmailTokens, TokenRefused
from features.sessions.models import BrowserSession
from features.sessions.service import SessionInfo, SessionService
from features.users.service import EmailTaken, User, UserNotFound, UserService, normalise_email
from shared.config import Settings
from shared.security.passwords import Passwords

__all__ = [
    "AccountService",
    "EmailChangeRequested",
    "EmailChanged",
    "EmailRestored",
    "SameEmail",
    "WrongPassword",
]


class SameEmail(Exception):
    """The new address is the account's current one."""


class WrongPassword(Exception):
    """The current password given to change the password is not right (S4)."""


@dataclass(frozen=True, slots=True)
class EmailChangeRequested:
    """What to mail: a ``token`` for ``new_email``, or (taken) a notice to ``owner``."""

    user: User
    new_email: str
    token: str | None
    owner: User | None


@dataclass(frozen=True, slots=True)
class EmailChanged:
    """A completed change: ``user`` now has ``new_email``; ``old_email`` gets a notice with the
    ``revert_token`` link that undoes the change."""

    user: User
    old_email: str
    new_email: str
    revert_token: str


@dataclass(frozen=True, slots=True)
class EmailRestored:
    """An undone change: ``user`` has ``email`` (the old address) again and must choose a new
    password with ``reset_token``, mailed there."""

    user: User
    email: str
    reset_token: str


class AccountService:
    """The settings of one's own account."""

    def __init__(self, session: AsyncSession, settings: Settings, passwords: Passwords) -> None:
        self.session = session
        self.passwords = passwords
        self.users = UserService(session)
        self.sessions = SessionService(session, settings)
        self.tokens = EmailTokens(session)

    async def _user(self, user_id: uuid.UUID) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user

    async def rename(self, user_id: uuid.UUID, name: str) -> bool:
        """Set the display name; False when unchanged. Raises :class:`UserNotFound`."""
        changed = await self.users.rename(await self._user(user_id), name)
        await self.session.commit()
        return changed

    async def request_email_change(
        self, user_id: uuid.UUID, new_email: str
    ) -> EmailChangeRequested:
        """Issue the link for ``new_email`` (already syntax-checked), or, when another account
        has it, return that ``owner`` and write nothing. Raises :class:`SameEmail`."""
        user = await self._user(user_id)
        new_email = normalise_email(new_email)
        if new_email == user.email:
            await self.session.commit()
            raise SameEmail(new_email)
        owner = await self.users.by_email(new_email)
        if owner is not None:
            await self.session.commit()
            return EmailChangeRequested(user=user, new_email=new_email, token=None, owner=owner)
        token = await self.tokens.issue(user.id, TokenKind.CHANGE_EMAIL, new_email)
        await self.session.commit()
        return EmailChangeRequested(user=user, new_email=new_email, token=token, owner=None)

    async def check_email_change(
        self, raw_token: str, signed_in: uuid.UUID | None
    ) -> tuple[User, str]:
        """``(user, new_email)`` of a live change link (nothing changes). A link of another
        account than the signed-in one is refused as invalid. Raises :class:`TokenRefused`."""
        row = await self.tokens.check(raw_token, TokenKind.CHANGE_EMAIL)
        user = await self.users.get(row.user_id)
        await self.session.commit()
        if user is None or user.disabled_at is not None:
            raise TokenRefused("invalid")
        if signed_in is not None and signed_in != user.id:
            raise TokenRefused("invalid")
        return user, row.email

    async def confirm_email_change(
        self, raw_token: str, signed_in: uuid.UUID | None
    ) -> EmailChanged:
        """Use a change link: the account gets the new (verified) address; its other links die.

        Raises :class:`TokenRefused` (nothing changes), or :class:`EmailTaken` when another
        account took the address meanwhile (nothing changes, the link stays usable).
        """
        await self.check_email_change(raw_token, signed_in)
        row = await self.tokens.consume(raw_token, TokenKind.CHANGE_EMAIL)
        user = await self._user(row.user_id)
        old_email = user.email
        try:
            await self.users.set_verified_email(user, row.email)
        except EmailTaken:
            await self.session.rollback()
            raise
        await self.tokens.discard(user.id, TokenKind.VERIFY_EMAIL, TokenKind.RESET_PASSWORD)
        revert = await self.tokens.issue(
            user.id, TokenKind.REVERT_EMAIL, old_email, supersede=False
        )
        await self.session.commit()
        return EmailChanged(
            user=user, old_email=old_email, new_email=user.email, revert_token=revert
        )

    async def check_email_revert(self, raw_token: str) -> tuple[User, str]:
        """``(user, old_email)`` of a live undo link (nothing changes). Raises
        :class:`TokenRefused`."""
        row = await self.tokens.check(raw_token, TokenKind.REVERT_EMAIL)
        user = await self.users.get(row.user_id)
        await self.session.commit()
        if user is None or user.disabled_at is not None:
            raise TokenRefused("invalid")
        return user, row.email

    async def revert_email_change(self, raw_token: str) -> EmailRestored:
        """Use an undo link (sent to the address a change replaced), in one transaction: the
        account gets that address back (verified), every session ends (S18), the password is
        removed, every other pending link of the account dies (change, verification, reset,
        other undo links), and a 60-minute reset link for the restored address is issued.
        Commits.

        Raises :class:`TokenRefused` (nothing changes), or :class:`EmailTaken` when another
        account uses the old address now (nothing changes, the link stays usable).
        """
        await self.check_email_revert(raw_token)
        row = await self.tokens.consume(raw_token, TokenKind.REVERT_EMAIL)
        user = await self._user(row.user_id)
        if user.email != row.email:
            try:
                await self.users.set_verified_email(user, row.email)
            except EmailTaken:
                await self.session.rollback()
                raise
        await self.users.clear_password(user)
        await self.sessions.end_all_for_user(user.id)
        await self.tokens.discard(user.id)
        reset = await self.tokens.issue(user.id, TokenKind.RESET_PASSWORD, user.email)
        await self.session.commit()
        return EmailRestored(user=user, email=user.email, reset_token=reset)

    async def change_password(
        self,
        current: SessionInfo,
        current_password: str,
        new_password: str,
        client: ClientInfo,
    ) -> tuple[User, str, BrowserSession]:
        """Check ``current_password`` (S4), set ``new_password`` (checked against S3 by the
        caller), end every other session and rotate this one (S18); returns the user and the
        new ``(cookie token, session row)``. Pending reset and email-change links die too, in
        the same transaction.

        Raises :class:`WrongPassword` (nothing changes). No lock is held during Argon2.
        """
        user = await self._user(current.user_id)
        await self.session.commit()
        if not await self.passwords.verify(user.password_hash, current_password):
            raise WrongPassword()
        password_hash = await self.passwords.hash(new_password)
        await self.users.set_password_hash(user, password_hash)
        # Outstanding reset and email-change links die with the old password (S18): one asked
        # for by whoever the change locks out must not hand them the account back later.
        await self.tokens.discard(user.id, TokenKind.RESET_PASSWORD, TokenKind.CHANGE_EMAIL)
        token, row = await self.sessions.rotate_after_password_change(
            current, ip_address=client.ip_address, user_agent=client.user_agent
        )
        await self.session.commit()
        return user, token, row

    async def delete_account(self, user_id: uuid.UUID) -> User:
        """Delete the account and everything it owns; returns it as it was (for the goodbye
        mail). Raises :class:`UserNotFound`, or ``LastAdmin`` (nothing changes)."""
        try:
            user = await self.users.delete(user_id)
        except Exception:
            await self.session.rollback()  # release the admins' row locks at once
            raise
        await self.session.commit()
        return user
