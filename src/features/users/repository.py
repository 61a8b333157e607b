"""All SQL about users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from features.users.models import Role, User
from shared.database import Page, Repository, escape_like


async def user_by_email(engine: AsyncEngine, email: str) -> User | None:
    """The user whose stored (normalised) email equals ``email``, or ``None``, detached.

    One SELECT on its own connection of ``engine`` (pass ``Database.single_read_engine``: no
    transaction around it, and on SQLite no write lock, as the request's writer session would
    take), for a read that the rest of a request does not need to share a transaction with:
    the sign-in look-up before Argon2 runs. The returned object belongs to no session; write
    through :meth:`UserRepository.stamp_sign_in`, not by changing its attributes.
    """
    async with AsyncSession(engine) as session:
        return await session.scalar(select(User).where(User.email == email))


class UserRepository(Repository[User]):
    """Users by id or (normalised) email."""

    model = User

    async def by_email(self, email: str) -> User | None:
        """Return the user whose stored (normalised) email equals ``email``, or ``None``."""
        return await self.session.scalar(select(User).where(User.email == email))

    async def stamp_sign_in(
        self,
        user_id: uuid.UUID,
        *,
        checked_hash: str,
        when: datetime,
        new_hash: str | None = None,
    ) -> bool:
        """``UPDATE users SET last_login_at = when [, password_hash = new_hash]`` for
        ``user_id``, only while its password hash is still ``checked_hash`` and it is not
        disabled; True when the row was changed (one statement, no ORM state involved)."""
        values: dict[str, Any] = {"last_login_at": when, "updated_at": when}
        if new_hash is not None:
            values["password_hash"] = new_hash
        result = await self.session.execute(
            update(User)
            .where(
                User.id == user_id,
                User.password_hash == checked_hash,
                User.disabled_at.is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def email_taken(self, email: str) -> bool:
        """True when a user already has the normalised ``email``."""
        return (await self.session.scalar(select(User.id).where(User.email == email))) is not None


# Sort keys allowed in the admin list's URL and the ORDER BY each stands for (S49).
SORTS: dict[str, tuple[Any, ...]] = {
    "newest": (User.created_at.desc(), User.id.desc()),
    "oldest": (User.created_at.asc(), User.id.asc()),
    "name": (func.lower(User.name).asc(), User.id.asc()),
    "email": (User.email.asc(), User.id.asc()),
    "last_login": (User.last_login_at.desc().nulls_last(), User.id.desc()),
}


@dataclass(frozen=True, slots=True)
class UserFilter:
    """What the admin list narrows by; ``None`` means "any"."""

    text: str = ""
    role: Role | None = None
    disabled: bool | None = None
    verified: bool | None = None
    two_factor: bool | None = None


@dataclass(frozen=True, slots=True)
class UserStats:
    """Counts over every account, from one aggregate query."""

    total: int
    admins: int
    active_admins: int
    disabled: int
    verified: int
    two_factor: int
    new_7_days: int
    new_30_days: int


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class UserAdminQueries(Repository[User]):
    """Queries and status updates for the admin area and the command line."""

    model = User

    async def search(self, where: UserFilter, *, sort: str, page: int, per_page: int) -> Page[User]:
        """One page of users matching ``where``; name or email contains ``where.text``
        literally and case-insensitively (escaped LIKE, S49).

        ``sort`` must be a key of :data:`SORTS` (``KeyError`` otherwise). Raises
        ``PageOutOfRange`` for a page past the end.
        """
        stmt = select(User)
        if where.text:
            pattern = f"%{escape_like(where.text.lower())}%"
            stmt = stmt.where(
                or_(
                    func.lower(User.name).like(pattern, escape="\\"),
                    User.email.like(pattern, escape="\\"),
                )
            )
        if where.role is not None:
            stmt = stmt.where(User.role == where.role)
        if where.disabled is not None:
            column = User.disabled_at
            stmt = stmt.where(column.is_not(None) if where.disabled else column.is_(None))
        if where.verified is not None:
            column = User.email_verified_at
            stmt = stmt.where(column.is_not(None) if where.verified else column.is_(None))
        if where.two_factor is not None:
            stmt = stmt.where(User.two_factor_enabled.is_(where.two_factor))
        return await self.paginate(stmt.order_by(*SORTS[sort]), page, per_page)

    async def stats(self, now: datetime) -> UserStats:
        """Counts over all users in one query; "new" means created at or after ``now`` − N days."""
        active_admin = (User.role == Role.ADMIN) & User.disabled_at.is_(None)
        row = (
            await self.session.execute(
                select(
                    func.count(),
                    _count_if(User.role == Role.ADMIN),
                    _count_if(active_admin),
                    _count_if(User.disabled_at.is_not(None)),
                    _count_if(User.email_verified_at.is_not(None)),
                    _count_if(User.two_factor_enabled.is_(True)),
                    _count_if(User.created_at >= now - timedelta(days=7)),
                    _count_if(User.created_at >= now - timedelta(days=30)),
                ).select_from(User)
            )
        ).one()
        return UserStats(*(int(v) for v in row))

    async def lock_active_admins(self) -> list[uuid.UUID]:
        """Ids of every enabled admin, rows locked until the transaction ends.

        On PostgreSQL ``FOR UPDATE`` makes two concurrent demotions queue, and the second
        re-reads the first one's result; on SQLite the writer's ``BEGIN IMMEDIATE`` already
        serialises them (S39).
        """
        rows = await self.session.scalars(
            select(User.id)
            .where(User.role == Role.ADMIN, User.disabled_at.is_(None))
            .order_by(User.id)
            .with_for_update()
        )
        return list(rows)

    async def fresh(self, user_id: uuid.UUID) -> User | None:
        """The user re-read from the database (never a stale copy from the session)."""
        return await self.session.scalar(
            select(User).where(User.id == user_id).execution_options(populate_existing=True)
        )

    async def update_where(self, user_id: uuid.UUID, condition: Any, **values: Any) -> int:
        """``UPDATE users SET values WHERE id = user_id AND condition``; returns rows changed."""
        result = await self.session.execute(
            update(User).where(User.id == user_id, condition).values(**values)
        )
        return result.rowcount or 0
