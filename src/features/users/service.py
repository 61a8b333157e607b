"""Users' public face: other features create, find and update users only through here."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from functools import lru_cache

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from features.users.models import Role, User
from features.users.repository import (
    SORTS,
    UserAdminQueries,
    UserFilter,
    UserRepository,
    UserStats,
    user_by_email,
)
from shared import clock
from shared.database import Page
from shared.mail import unsafe_in_header

__all__ = [
    "SORTS",
    "EmailTaken",
    "LastAdmin",
    "Role",
    "User",
    "UserFilter",
    "UserNotFound",
    "UserService",
    "UserStats",
    "email_error",
    "find_by_email",
    "name_error",
    "normalise_email",
]

NAME_MAX = 100
EMAIL_MAX = 254


class EmailTaken(Exception):
    """Raised when a new account's email is already registered."""


class UserNotFound(LookupError):
    """Raised when no user has the given id or email."""


class LastAdmin(Exception):
    """Raised when a change would leave no enabled administrator (SECURITY.md S39)."""


NON_ASCII_LOCAL_PART = (
    "Our mail cannot reach an address with characters other than plain ASCII letters, digits "
    "and punctuation before the @. Use another address."
)


def _validated(raw: str, *, smtputf8: bool) -> ValidatedEmail:
    return validate_email(raw, check_deliverability=False, allow_smtputf8=smtputf8)


@lru_cache(maxsize=1024)
def normalise_email(raw: str) -> str:
    """Return ``raw`` trimmed, with an internationalised domain in its ASCII (IDNA, punycode)
    form and the whole address lower-cased (DESIGN.md §2).

    Lower-casing the local part too means ``Ann@x.org`` and ``ann@x.org`` are one account;
    the ASCII domain means ``ann@bücher.example`` and ``ann@xn--bcher-kva.example`` are one
    account too, and that every stored address can be given to an SMTP server that does not
    speak SMTPUTF8 (RFC 5890, RFC 6531). A string that is not a valid address is only trimmed
    and lower-cased (it is used for look-ups that find nothing), never refused here.

    Results are cached (1,024 addresses, per process): one sign-in normalises the same
    address for its throttle keys, its look-up and its success, and a validation costs
    about a third of a millisecond.
    """
    email = raw.strip()
    with contextlib.suppress(EmailNotValidError):
        email = _validated(email, smtputf8=False).ascii_email or email
    return email.lower()


def email_error(raw: str) -> str | None:
    """Return why ``raw`` is not an acceptable email address, or ``None`` if it is.

    Syntax only (no DNS look-up); display names (``"A" <a@b>``), CR/LF and over-long
    addresses are refused, and so is a local part (before the @) with non-ASCII characters:
    the mail transport does not use SMTPUTF8, so such an address could never get our mail
    (an internationalised domain is fine: it is stored in its ASCII form).
    """
    if not raw:
        return "Enter your email address."
    if len(raw) > EMAIL_MAX:
        return f"An email address has at most {EMAIL_MAX} characters."
    try:
        _validated(raw, smtputf8=False)
    except EmailNotValidError:
        try:
            _validated(raw, smtputf8=True)
        except EmailNotValidError:
            return "Enter a valid email address, like name@example.com."
        return NON_ASCII_LOCAL_PART
    return None


def name_error(raw: str) -> str | None:
    """Return why ``raw`` is not an acceptable display name, or ``None``.

    At most 100 characters, and nothing a mail header refuses: the name is the display name of
    every account mail, so the rule is :func:`shared.mail.unsafe_in_header` (control characters
    C0, DEL and C1, and line separators).
    """
    if not raw:
        return "Enter your name."
    if len(raw) > NAME_MAX:
        return f"A name has at most {NAME_MAX} characters."
    if unsafe_in_header(raw):
        return "A name cannot contain control characters."
    return None


async def find_by_email(engine: AsyncEngine, email: str) -> User | None:
    """The user with the (raw, normalised here) ``email``, or ``None``: one SELECT outside any
    transaction (pass ``Database.single_read_engine``); the user is detached (see
    :func:`features.users.repository.user_by_email`)."""
    return await user_by_email(engine, normalise_email(email))


class UserService:
    """Rules about user accounts. Takes the request's session; commits nothing itself."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.users = UserRepository(session)

    async def get(self, user_id: uuid.UUID) -> User | None:
        """Return the user with ``user_id`` or ``None``."""
        return await self.users.get(user_id)

    async def by_email(self, email: str) -> User | None:
        """Return the user with the (raw, normalised here) ``email`` or ``None``."""
        return await self.users.by_email(normalise_email(email))

    async def create(
        self, *, name: str, email: str, password_hash: str, role: Role = Role.USER
    ) -> User:
        """Add a new user (flushed, not committed). Raises :class:`EmailTaken` on a duplicate."""
        email = normalise_email(email)
        if await self.users.email_taken(email):
            raise EmailTaken(email)
        try:
            return await self.users.add(
                User(name=name, email=email, password_hash=password_hash, role=role)
            )
        except IntegrityError as exc:  # a concurrent registration won the unique index
            raise EmailTaken(email) from exc

    async def stamp_sign_in(
        self, user: User, *, checked_hash: str, when: datetime, new_hash: str | None = None
    ) -> bool:
        """Record a sign-in of ``user`` at ``when`` (``users.last_login_at``), replacing the
        password hash by ``new_hash`` when given (a re-hash with current parameters, S2).

        Nothing is written, and False returned, when since the password was checked against
        ``checked_hash`` the account got another password or was disabled: a sign-in racing a
        password reset or a disabling must not outlive it (S18, S19). Not committed.
        """
        return await self.users.stamp_sign_in(
            user.id, checked_hash=checked_hash, when=when, new_hash=new_hash
        )

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        """Replace ``user``'s password hash (flushed, not committed)."""
        user.password_hash = password_hash
        await self.session.flush()

    async def clear_password(self, user: User) -> None:
        """Remove ``user``'s password (flushed, not committed): no password signs in until a
        reset link sets a new one (after a suspected takeover)."""
        user.password_hash = None
        await self.session.flush()

    async def rename(self, user: User, name: str) -> bool:
        """Set the display name (checked with :func:`name_error` by the caller); flushed.
        Returns False when it was already ``name``."""
        if user.name == name:
            return False
        user.name = name
        await self.session.flush()
        return True

    async def set_verified_email(self, user: User, email: str) -> None:
        """Give ``user`` the (normalised) ``email``, verified now; flushed, not committed.

        Raises :class:`EmailTaken` when another account has it (the session must then be
        rolled back).
        """
        email = normalise_email(email)
        if await self.users.email_taken(email):
            raise EmailTaken(email)
        user.email = email
        user.email_verified_at = clock.now()
        try:
            await self.session.flush()
        except IntegrityError as exc:  # a concurrent change or sign-up won the unique index
            raise EmailTaken(email) from exc

    async def delete(self, user_id: uuid.UUID) -> User:
        """Delete the account and, through ``ON DELETE CASCADE``, everything it owns (sessions,
        tasks, asset rows, notifications, tokens, recovery codes); audit events keep their rows
        with the user set to NULL. Returns the deleted user as it was (flushed, not committed).

        Raises :class:`UserNotFound`, or :class:`LastAdmin` for the last enabled admin (S39).
        """
        user = await self._guard_last_admin(user_id)
        await self.session.execute(
            delete(User).where(User.id == user_id).execution_options(synchronize_session=False)
        )
        self.session.expunge(user)
        return user

    # Administration (SECURITY.md S19, S39). Methods flush; the caller commits.

    async def search(self, where: UserFilter, *, sort: str, page: int, per_page: int) -> Page[User]:
        """One page of users for the admin list (see :meth:`UserAdminQueries.search`)."""
        return await UserAdminQueries(self.session).search(
            where, sort=sort, page=page, per_page=per_page
        )

    async def stats(self, now: datetime | None = None) -> UserStats:
        """Totals over every account (one query); "new" counts are relative to ``now``."""
        return await UserAdminQueries(self.session).stats(now or clock.now())

    async def fresh(self, user_id: uuid.UUID) -> User:
        """The user as stored now. Raises :class:`UserNotFound`."""
        user = await UserAdminQueries(self.session).fresh(user_id)
        if user is None:
            raise UserNotFound(user_id)
        return user

    async def _guard_last_admin(self, user_id: uuid.UUID) -> User:
        """Lock the enabled admins, then refuse if ``user_id`` is the only one (S39).

        The lock is taken before the user is read, so two concurrent demotions of the last
        two admins cannot both pass the check. Raises :class:`UserNotFound`, :class:`LastAdmin`.
        """
        admins = await UserAdminQueries(self.session).lock_active_admins()
        user = await self.fresh(user_id)
        if admins == [user.id]:
            raise LastAdmin(user_id)
        return user

    async def set_role(self, user_id: uuid.UUID, role: Role) -> Role:
        """Give ``user_id`` the ``role``; returns the previous role (equal if nothing changed).

        Takes effect on the user's next request: the role is read with the session (S19).
        Raises :class:`UserNotFound`, or :class:`LastAdmin` when demoting the last enabled admin.
        """
        user = await self._guard_last_admin(user_id) if role != Role.ADMIN else None
        user = user or await self.fresh(user_id)
        old = user.role
        if old != role:
            await UserAdminQueries(self.session).update_where(user_id, User.role == old, role=role)
            await self.session.refresh(user)
        return old

    async def disable(self, user_id: uuid.UUID) -> bool:
        """Mark the account disabled now; returns False if it already was.

        A disabled account cannot sign in and no session of it resolves any more (S19); the
        caller also deletes its sessions. Raises :class:`UserNotFound`, or :class:`LastAdmin`
        for the last enabled admin.
        """
        await self._guard_last_admin(user_id)
        changed = await UserAdminQueries(self.session).update_where(
            user_id, User.disabled_at.is_(None), disabled_at=clock.now()
        )
        return changed > 0

    async def enable(self, user_id: uuid.UUID) -> bool:
        """Lift a disable; returns False if the account was not disabled. Raises :class:`UserNotFound`."""
        await self.fresh(user_id)
        changed = await UserAdminQueries(self.session).update_where(
            user_id, User.disabled_at.is_not(None), disabled_at=None
        )
        return changed > 0

    async def mark_email_verified(self, user_id: uuid.UUID) -> bool:
        """Mark the email verified now (an admin vouches for it); False if it already was.

        Raises :class:`UserNotFound`.
        """
        await self.fresh(user_id)
        changed = await UserAdminQueries(self.session).update_where(
            user_id, User.email_verified_at.is_(None), email_verified_at=clock.now()
        )
        return changed > 0
