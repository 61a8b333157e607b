"""All SQL about users."""

from __future__ import annotations

from sqlalchemy import select

from features.users.models import User
from shared.database import Repository


class UserRepository(Repository[User]):
    """Users by id or (normalised) email."""

    model = User

    async def by_email(self, email: str) -> User | None:
        """Return the user whose stored (normalised) email equals ``email``, or ``None``."""
        return await self.session.scalar(select(User).where(User.email == email))

    async def email_taken(self, email: str) -> bool:
        """True when a user already has the normalised ``email``."""
        return (await self.session.scalar(select(User.id).where(User.email == email))) is not None
