"""Notifications' public face: ``NotificationService(session).notify(...)`` creates one.

Other features never import this to react to their own actions: they emit a security event
(``shared.events``) and :mod:`features.notifications.reactions` turns it into a notification.
Code outside a request (CLI, jobs, listeners) uses :func:`notify_user` with ``state.db``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from features.notifications.models import (
    LINK_MAX,
    MESSAGE_MAX,
    TITLE_MAX,
    Notification,
    NotificationType,
)
from features.notifications.repository import Bell, NotificationRepository
from shared import clock
from shared.database import Database, Page

__all__ = [
    "Bell",
    "Notification",
    "NotificationNotFound",
    "NotificationService",
    "NotificationType",
    "notify_user",
]

BELL_SIZE = 10


class NotificationNotFound(LookupError):
    """The notification does not exist or belongs to someone else (both answer 404, S38)."""


def _clean_text(value: str, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean_link(link: str | None) -> str | None:
    """A same-site path (single leading ``/``, no backslash or control characters) or ``None``.

    Raises ``ValueError`` for anything else: a notification never links off-site (S50).
    """
    if link is None or link == "":
        return None
    if (
        len(link) > LINK_MAX
        or not link.startswith("/")
        or link.startswith("//")
        or "\\" in link
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in link)
    ):
        raise ValueError(f"notification links must be same-site paths: {link!r}")
    return link


class NotificationService:
    """Create, count, list, mark read and delete one user's notifications. Writes commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.notifications = NotificationRepository(session)

    async def notify(
        self,
        user_id: uuid.UUID,
        type: NotificationType | str,
        title: str,
        message: str,
        link: str | None = None,
        *,
        data: dict[str, Any] | None = None,
    ) -> Notification:
        """Store a notification for ``user_id`` and commit; every open tab of that user gets
        it within about a second (the live poller, :mod:`features.notifications.live`).

        ``title`` (≤ 200 characters) and ``message`` (≤ 1000) are whitespace-collapsed and
        shortened with an ellipsis; they are plain text, escaped wherever shown (S51).
        ``link`` must be a same-site path. Raises ``ValueError`` for an unknown ``type`` or an
        off-site ``link``; a missing user fails the commit (foreign key).
        """
        notification = Notification(
            user_id=user_id,
            type=NotificationType(type),
            title=_clean_text(title, TITLE_MAX),
            message=_clean_text(message, MESSAGE_MAX),
            link=_clean_link(link),
            data=dict(data or {}),
        )
        await self.notifications.add(notification)
        await self.session.commit()
        return notification

    async def add_demo(
        self, user_id: uuid.UUID, items: list[tuple[NotificationType, str, str, str | None, bool]]
    ) -> int:
        """Add demo notifications ``(type, title, message, link, read)`` for ``user_id``
        (flushed, not committed: the caller's transaction, e.g. ``litestar db seed``, decides);
        returns how many."""
        now = clock.now()
        self.session.add_all(
            Notification(
                user_id=user_id,
                type=type_,
                title=_clean_text(title, TITLE_MAX),
                message=_clean_text(message, MESSAGE_MAX),
                link=_clean_link(link),
                data={"demo": True},
                read_at=now if read else None,
            )
            for type_, title, message, link, read in items
        )
        await self.session.flush()
        return len(items)

    async def bell(self, user_id: uuid.UUID, limit: int = BELL_SIZE) -> Bell:
        """Unread count and the ``limit`` newest notifications, in one query."""
        return await self.notifications.bell(user_id, limit)

    async def unread_count(self, user_id: uuid.UUID) -> int:
        """How many unread notifications ``user_id`` has."""
        return await self.notifications.unread_count(user_id)

    async def list(
        self, user_id: uuid.UUID, *, unread_only: bool, page: int, per_page: int
    ) -> Page[Notification]:
        """One page, newest first. Raises ``PageOutOfRange`` past the end."""
        return await self.notifications.list(
            user_id, unread_only=unread_only, page=page, per_page=per_page
        )

    async def mark_read(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> None:
        """Mark an owned notification read and commit. Raises :class:`NotificationNotFound`."""
        if not await self.notifications.mark_read(user_id, notification_id, clock.now()):
            raise NotificationNotFound(notification_id)
        await self.session.commit()

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        """Mark all of ``user_id``'s unread notifications read, commit; returns how many."""
        count = await self.notifications.mark_all_read(user_id, clock.now())
        await self.session.commit()
        return count

    async def delete(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> None:
        """Delete an owned notification and commit. Raises :class:`NotificationNotFound`."""
        if await self.notifications.delete_owned(user_id, notification_id) == 0:
            raise NotificationNotFound(notification_id)
        await self.session.commit()

    async def delete_read(self, user_id: uuid.UUID) -> int:
        """Delete all of ``user_id``'s read notifications, commit; returns how many."""
        count = await self.notifications.delete_read(user_id)
        await self.session.commit()
        return count

    async def prune(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Delete every user's notifications older than ``older_than``, commit; returns how many."""
        cutoff = (now or clock.now()) - older_than
        count = await self.notifications.delete_older_than(cutoff)
        await self.session.commit()
        return count


async def notify_user(
    db: Database,
    user_id: uuid.UUID,
    type: NotificationType | str,
    title: str,
    message: str,
    link: str | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> Notification:
    """:meth:`NotificationService.notify` in its own write transaction on ``db``
    (``state.db``): for listeners, jobs and CLI commands that have no request session.
    """
    async with db.writer() as session:
        return await NotificationService(session).notify(
            user_id, type, title, message, link, data=data
        )
