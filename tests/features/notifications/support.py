"""Helpers for notification tests: user ids by email, creating and reading notifications."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from features.notifications.models import Notification
from features.notifications.service import notify_user
from features.users.models import User


async def user_id(db, email: str) -> uuid.UUID:
    async with db.reader() as session:
        return await session.scalar(select(User.id).where(User.email == email))


async def make(db, owner: uuid.UUID, count: int = 1, **fields) -> list[Notification]:
    made = []
    for i in range(count):
        made.append(
            await notify_user(
                db,
                owner,
                fields.get("type", "info"),
                fields.get("title", f"Note {i + 1}"),
                fields.get("message", f"Message {i + 1}"),
                fields.get("link"),
            )
        )
    return made


async def rows(db, owner: uuid.UUID) -> list[Notification]:
    async with db.reader() as session:
        result = await session.scalars(
            select(Notification)
            .where(Notification.user_id == owner)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
        )
        return list(result)


async def total(db) -> int:
    async with db.reader() as session:
        return await session.scalar(select(func.count()).select_from(Notification)) or 0


async def wait_for_rows(db, owner: uuid.UUID, count: int, timeout: float = 2.0) -> list:
    """Poll (listeners run after the response) until ``owner`` has ``count`` rows or time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await rows(db, owner)
        if len(found) >= count or loop.time() > deadline:
            return found
        await asyncio.sleep(0.02)
