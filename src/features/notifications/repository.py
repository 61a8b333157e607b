"""All SQL about notifications. Every per-user query is scoped to its owner (SECURITY.md S38)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.orm import aliased

from features.notifications.models import Notification
from shared.database import Page, Repository
from shared.database.compiled import CompiledSelect

NEWEST_FIRST = (Notification.created_at.desc(), Notification.id.desc())


@dataclass(frozen=True, slots=True)
class Bell:
    """What the navigation bell shows: the unread count and the newest few notifications.

    ``recent`` holds named tuples with ``id``, ``type`` (a ``NotificationType``), ``title``,
    ``message``, ``link``, ``read_at``, ``created_at`` and ``unread``, newest first.
    """

    unread: int
    recent: Sequence[Any]


def _unread_of(user_id: Any) -> Any:
    """A scalar subquery: the unread count of ``user_id`` (a value or a correlated column)."""
    other = aliased(Notification)
    return (
        select(func.count())
        .select_from(other)
        .where(other.user_id == user_id, other.read_at.is_(None))
        .scalar_subquery()
    )


# The bell is on every signed-in page: its statement is built once (Core, bound parameters),
# since building an aliased ORM statement per request cost more than running it (DESIGN.md §3).
_n = Notification.__table__
_other = _n.alias("other")
_BELL_UNREAD = (
    select(func.count())
    .select_from(_other)
    .where(_other.c.user_id == bindparam("user_id"), _other.c.read_at.is_(None))
    .scalar_subquery()
)
_BELL = (
    select(
        _n.c.id,
        _n.c.type,
        _n.c.title,
        _n.c.message,
        _n.c.link,
        _n.c.read_at,
        _n.c.created_at,
        _BELL_UNREAD.label("unread"),
    )
    .where(_n.c.user_id == bindparam("user_id"))
    .order_by(_n.c.created_at.desc(), _n.c.id.desc())
    .limit(bindparam("limit"))
)


# On every signed-in page: compiled once, run on the cursor (shared.database.compiled).
_BELL_COMPILED = CompiledSelect(_BELL)


class NotificationRepository(Repository[Notification]):
    """Notifications of one owner at a time, plus the cross-user reads of the live poller."""

    model = Notification

    async def owned(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification | None:
        """Return notification ``notification_id`` if ``user_id`` owns it, else ``None``."""
        return await self.session.scalar(
            select(Notification).where(
                Notification.id == notification_id, Notification.user_id == user_id
            )
        )

    async def list(
        self, user_id: uuid.UUID, *, unread_only: bool, page: int, per_page: int
    ) -> Page[Notification]:
        """One page of ``user_id``'s notifications, newest first.

        Raises ``PageOutOfRange`` for a page past the end.
        """
        stmt = select(Notification).where(Notification.user_id == user_id)
        if unread_only:
            stmt = stmt.where(Notification.read_at.is_(None))
        return await self.paginate(stmt.order_by(*NEWEST_FIRST), page, per_page)

    async def unread_count(self, user_id: uuid.UUID) -> int:
        """How many of ``user_id``'s notifications are unread (index ``user_id, read_at``)."""
        return (
            await self.session.scalar(
                select(func.count()).where(
                    Notification.user_id == user_id, Notification.read_at.is_(None)
                )
            )
            or 0
        )

    async def bell(self, user_id: uuid.UUID, limit: int) -> Bell:
        """The unread count and the ``limit`` newest notifications in ONE query.

        The count rides along as a scalar subquery on every row; with no rows at all the
        user has no notifications, so the count is 0.
        """
        rows = await _BELL_COMPILED.fetch(self.session, {"user_id": user_id, "limit": limit})
        return Bell(unread=rows[0].unread if rows else 0, recent=rows)

    async def after(
        self, user_id: uuid.UUID, after_id: uuid.UUID, limit: int
    ) -> list[Row[tuple[Notification, int]]]:
        """``user_id``'s notifications created after ``after_id`` (oldest first), each with
        the user's current unread count: what a reconnecting stream missed (``Last-Event-ID``).
        """
        rows = await self.session.execute(
            select(Notification, _unread_of(user_id))
            .where(Notification.user_id == user_id, Notification.id > after_id)
            .order_by(Notification.id.asc())
            .limit(limit)
        )
        return list(rows.all())

    async def ids_between(
        self, user_id: uuid.UUID, above: uuid.UUID, up_to: uuid.UUID
    ) -> list[uuid.UUID]:
        """Ids of ``user_id``'s notifications with ``above < id <= up_to`` (primary-key range)."""
        rows = await self.session.scalars(
            select(Notification.id).where(
                Notification.user_id == user_id, Notification.id > above, Notification.id <= up_to
            )
        )
        return list(rows)

    async def newer_than(self, floor_id: uuid.UUID, limit: int) -> list[Row[tuple[Any, ...]]]:
        """Every user's notifications with ``id > floor_id`` (oldest first), each with its
        owner's unread count: the live poller's single query (primary-key range scan).

        Returns Core rows ``(id, user_id, type, title, message, link, created_at, unread)``.
        """
        n = Notification
        rows = await self.session.execute(
            select(
                n.id,
                n.user_id,
                n.type,
                n.title,
                n.message,
                n.link,
                n.created_at,
                _unread_of(n.user_id),
            )
            .where(n.id > floor_id)
            .order_by(n.id.asc())
            .limit(limit)
        )
        return list(rows.all())

    async def mark_read(
        self, user_id: uuid.UUID, notification_id: uuid.UUID, now: datetime
    ) -> bool:
        """Mark one owned notification read (kept if already read). False if not owned/missing."""
        notification = await self.owned(user_id, notification_id)
        if notification is None:
            return False
        if notification.read_at is None:
            notification.read_at = now
            await self.session.flush()
        return True

    async def mark_all_read(self, user_id: uuid.UUID, now: datetime) -> int:
        """Mark every unread notification of ``user_id`` read; returns how many changed."""
        result = await self.session.execute(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=now)
        )
        return result.rowcount or 0

    async def delete_owned(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> int:
        """Delete one owned notification; returns rows deleted (0 or 1)."""
        result = await self.session.execute(
            delete(Notification).where(
                Notification.id == notification_id, Notification.user_id == user_id
            )
        )
        return result.rowcount or 0

    async def delete_read(self, user_id: uuid.UUID) -> int:
        """Delete every read notification of ``user_id``; returns how many."""
        result = await self.session.execute(
            delete(Notification).where(
                Notification.user_id == user_id, Notification.read_at.is_not(None)
            )
        )
        return result.rowcount or 0

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete every notification created before ``cutoff`` (all users); returns how many."""
        result = await self.session.execute(
            delete(Notification).where(Notification.created_at < cutoff)
        )
        return result.rowcount or 0
