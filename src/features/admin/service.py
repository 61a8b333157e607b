"""Administration rules (SECURITY.md S19, S39): the figures, the user list, and the actions an
administrator takes on an account. Everything reaches other features through their services.

An administrator never sees or sets a password. The last enabled administrator cannot be
demoted or disabled (``users.service.LastAdmin``), and nobody disables or demotes themselves
here (another administrator, or the command line, must do it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from features.admin.schemas import PER_PAGE, UserQuery
from features.sessions.models import BrowserSession
from features.sessions.service import SessionService
from features.tasks.service import TaskService
from features.users.service import LastAdmin, Role, User, UserNotFound, UserService, UserStats
from shared.config import Settings
from shared.database import Page

__all__ = ["AdminService", "LastAdmin", "Overview", "SelfChange", "UserDetail", "UserNotFound"]


class SelfChange(Exception):
    """Raised when an administrator tries to disable or demote their own account."""


def share(part: int, whole: int) -> int:
    """``part`` as a whole percentage of ``whole`` (0 when ``whole`` is 0)."""
    return round(100 * part / whole) if whole else 0


@dataclass(frozen=True, slots=True)
class Overview:
    """The admin dashboard's figures."""

    users: UserStats
    live_sessions: int
    tasks_total: int

    @property
    def verified_share(self) -> int:
        """Accounts with a verified email, in whole percent of all accounts."""
        return share(self.users.verified, self.users.total)

    @property
    def two_factor_share(self) -> int:
        """Accounts with two-factor authentication on, in whole percent of all accounts."""
        return share(self.users.two_factor, self.users.total)


@dataclass(frozen=True, slots=True)
class UserDetail:
    """One account as the admin page shows it: the user and their live sessions."""

    user: User
    sessions: list[BrowserSession]


class AdminService:
    """What the admin area and the command line do to accounts. Action methods commit."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.users = UserService(session)
        self.sessions = SessionService(session, settings)
        self.tasks = TaskService(session)

    async def overview(self) -> Overview:
        """Users total / new / verified / 2FA, live sessions, tasks total: three queries."""
        return Overview(
            users=await self.users.stats(),
            live_sessions=await self.sessions.count_live(),
            tasks_total=await self.tasks.count_all(),
        )

    async def list_users(self, query: UserQuery) -> tuple[Page[User], UserStats]:
        """One page of matching users and the overall counts. Raises ``PageOutOfRange``."""
        results = await self.users.search(
            query.to_filter(), sort=query.sort, page=query.page, per_page=PER_PAGE
        )
        return results, await self.users.stats()

    async def user_detail(self, user_id: uuid.UUID) -> UserDetail:
        """The account and its live sessions. Raises :class:`UserNotFound`."""
        user = await self.users.fresh(user_id)
        return UserDetail(user=user, sessions=await self.sessions.live_for_user(user_id))

    async def change_role(self, actor_id: uuid.UUID | None, user_id: uuid.UUID, role: Role) -> Role:
        """Set the role and commit; returns the previous one. Applies on the next request (S19).

        Raises :class:`UserNotFound`, :class:`SelfChange` (demoting yourself) or
        :class:`LastAdmin` (demoting the last enabled admin, S39).
        """
        if actor_id == user_id and role != Role.ADMIN:
            raise SelfChange(user_id)
        try:
            old = await self.users.set_role(user_id, role)
        except LastAdmin:
            await self.session.rollback()  # release the admins' row locks at once
            raise
        await self.session.commit()
        return old

    async def disable(self, actor_id: uuid.UUID | None, user_id: uuid.UUID) -> int | None:
        """Disable the account, delete every session of it, commit (S19).

        Returns how many sessions ended, or ``None`` when it was already disabled. Raises
        :class:`UserNotFound`, :class:`SelfChange` or :class:`LastAdmin`.
        """
        if actor_id == user_id:
            raise SelfChange(user_id)
        try:
            changed = await self.users.disable(user_id)
        except LastAdmin:
            await self.session.rollback()  # release the admins' row locks at once
            raise
        ended = await self.sessions.end_all_for_user(user_id)
        await self.session.commit()
        return ended if changed else None

    async def enable(self, user_id: uuid.UUID) -> bool:
        """Enable a disabled account and commit; False if it was enabled. Raises :class:`UserNotFound`."""
        changed = await self.users.enable(user_id)
        await self.session.commit()
        return changed

    async def end_sessions(self, user_id: uuid.UUID) -> int:
        """Delete every session of the account and commit; returns how many. Raises :class:`UserNotFound`."""
        await self.users.fresh(user_id)
        ended = await self.sessions.end_all_for_user(user_id)
        await self.session.commit()
        return ended

    async def verify_email(self, user_id: uuid.UUID) -> bool:
        """Mark the email verified and commit; False if it was. Raises :class:`UserNotFound`."""
        changed = await self.users.mark_email_verified(user_id)
        await self.session.commit()
        return changed
