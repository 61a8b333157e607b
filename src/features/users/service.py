"""Users' public face: other features create, find and update users only through here."""

from __future__ import annotations

import uuid

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from features.users.models import Role, User
from features.users.repository import UserRepository

NAME_MAX = 100
EMAIL_MAX = 254


class EmailTaken(Exception):
    """Raised when a new account's email is already registered."""


def normalise_email(raw: str) -> str:
    """Return ``raw`` trimmed, with the whole address lower-cased (DESIGN.md §2).

    Lower-casing the local part too means ``Ann@x.org`` and ``ann@x.org`` are one account.
    """
    return raw.strip().lower()


def email_error(raw: str) -> str | None:
    """Return why ``raw`` is not an acceptable email address, or ``None`` if it is.

    Syntax only (no DNS look-up); display names (``"A" <a@b>``), CR/LF and over-long
    addresses are refused.
    """
    if not raw:
        return "Enter your email address."
    if len(raw) > EMAIL_MAX:
        return f"An email address has at most {EMAIL_MAX} characters."
    try:
        validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        return "Enter a valid email address, like name@example.com."
    return None


def name_error(raw: str) -> str | None:
    """Return why ``raw`` is not an acceptable display name, or ``None``."""
    if not raw:
        return "Enter your name."
    if len(raw) > NAME_MAX:
        return f"A name has at most {NAME_MAX} characters."
    if any(ord(c) < 0x20 for c in raw):
        return "A name cannot contain control characters."
    return None


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

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        """Replace ``user``'s password hash (flushed, not committed)."""
        user.password_hash = password_hash
        await self.session.flush()
