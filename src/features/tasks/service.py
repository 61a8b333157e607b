"""Tasks' public face: per-user task rules, and the figures the dashboard shows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from features.tasks.models import Task, TaskStatus
from features.tasks.repository import TaskOverview, TaskRepository, TaskStats
from features.tasks.schemas import PER_PAGE, TaskQuery
from shared.database import Page

__all__ = ["TaskNotFound", "TaskOverview", "TaskService", "TaskStats", "TaskStatus"]


class TaskNotFound(LookupError):
    """The task does not exist or belongs to someone else (both answer 404, S38)."""


class TaskService:
    """Create, list, change and delete one user's tasks. Write methods commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.tasks = TaskRepository(session)

    async def list(self, user_id: uuid.UUID, query: TaskQuery) -> Page[Any]:
        """One page of tasks matching ``query``, as rows with ``id``, ``title``, ``status``
        and ``created_at``. Raises ``PageOutOfRange`` past the end."""
        return await self.tasks.search(
            user_id,
            text=query.q,
            status=query.status_filter,
            sort=query.sort,
            page=query.page,
            per_page=PER_PAGE,
        )

    async def get(self, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
        """Return the owned task. Raises :class:`TaskNotFound`."""
        task = await self.tasks.owned(user_id, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def create(self, user_id: uuid.UUID, title: str) -> Task:
        """Add a pending task with a validated ``title`` and commit."""
        task = await self.tasks.insert(
            Task(user_id=user_id, title=title, status=TaskStatus.PENDING)
        )
        await self.session.commit()
        return task

    async def rename(self, user_id: uuid.UUID, task_id: uuid.UUID, title: str) -> Task:
        """Change the title of an owned task and commit. Raises :class:`TaskNotFound`."""
        task = await self.get(user_id, task_id)
        task.title = title
        await self.session.commit()
        return task

    async def set_status(self, user_id: uuid.UUID, task_id: uuid.UUID, status: TaskStatus) -> Task:
        """Mark an owned task pending or completed and commit. Raises :class:`TaskNotFound`."""
        task = await self.get(user_id, task_id)
        task.status = status
        await self.session.commit()
        return task

    async def delete(self, user_id: uuid.UUID, task_id: uuid.UUID) -> None:
        """Delete an owned task and commit. Raises :class:`TaskNotFound`."""
        if await self.tasks.delete_owned(user_id, task_id) == 0:
            raise TaskNotFound(task_id)
        await self.session.commit()

    async def stats(self, user_id: uuid.UUID, since: datetime) -> TaskStats:
        """Total, pending, completed, and created since ``since`` (one query)."""
        return await self.tasks.stats(user_id, since)

    async def recent(self, user_id: uuid.UUID, limit: int = 5) -> list[Row[Any]]:
        """The newest ``limit`` tasks (rows with ``id``, ``title``, ``status``, ``created_at``)."""
        return await self.tasks.recent(user_id, limit)

    async def overview(self, user_id: uuid.UUID, since: datetime, limit: int = 5) -> TaskOverview:
        """The figures of :meth:`stats` and the newest ``limit`` tasks, in one query."""
        return await self.tasks.overview(user_id, since, limit)

    async def count_all(self) -> int:
        """How many tasks exist in total, of every owner (for the admin dashboard)."""
        return await self.tasks.count_all()

    async def add_demo(self, user_id: uuid.UUID, items: list[tuple[str, TaskStatus]]) -> int:
        """Add demo tasks ``(title, status)`` for ``user_id`` (flushed, not committed); returns how many."""
        self.session.add_all(Task(user_id=user_id, title=t, status=s) for t, s in items)
        await self.session.flush()
        return len(items)
