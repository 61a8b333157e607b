"""All SQL about tasks. Every query is scoped to one owner (SECURITY.md S38)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select

from features.tasks.models import Task, TaskStatus
from shared.database import Page, Repository, escape_like

# Sort keys allowed in the URL and the ORDER BY each stands for (S49).
SORTS: dict[str, tuple[Any, ...]] = {
    "created": (Task.created_at.desc(), Task.id.desc()),
    "oldest": (Task.created_at.asc(), Task.id.asc()),
    "title": (func.lower(Task.title).asc(), Task.id.asc()),
    "status": (Task.status.asc(), Task.created_at.desc(), Task.id.desc()),
}


@dataclass(frozen=True, slots=True)
class TaskStats:
    """Figures for the dashboard: totals by status and how many were created since a moment."""

    total: int
    pending: int
    completed: int
    created_since: int


class TaskRepository(Repository[Task]):
    """Tasks of one owner at a time."""

    model = Task

    async def owned(self, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
        """Return task ``task_id`` if ``user_id`` owns it, else ``None``."""
        return await self.session.scalar(
            select(Task).where(Task.id == task_id, Task.user_id == user_id)
        )

    async def search(
        self,
        user_id: uuid.UUID,
        *,
        text: str,
        status: TaskStatus | None,
        sort: str,
        page: int,
        per_page: int,
    ) -> Page[Task]:
        """One page of ``user_id``'s tasks whose title contains ``text`` literally.

        ``sort`` must be a key of :data:`SORTS` (``KeyError`` otherwise). Raises
        ``PageOutOfRange`` for a page past the end.
        """
        stmt = select(Task).where(Task.user_id == user_id)
        if text:
            stmt = stmt.where(Task.title.like(f"%{escape_like(text)}%", escape="\\"))
        if status is not None:
            stmt = stmt.where(Task.status == status)
        return await self.paginate(stmt.order_by(*SORTS[sort]), page, per_page)

    async def recent(self, user_id: uuid.UUID, limit: int) -> list[Task]:
        """The ``limit`` newest tasks of ``user_id``."""
        rows = await self.session.scalars(
            select(Task).where(Task.user_id == user_id).order_by(*SORTS["created"]).limit(limit)
        )
        return list(rows)

    async def stats(self, user_id: uuid.UUID, since: datetime) -> TaskStats:
        """Totals for ``user_id`` in one aggregate query."""
        row = (
            await self.session.execute(
                select(
                    func.count(),
                    func.coalesce(
                        func.sum(case((Task.status == TaskStatus.PENDING, 1), else_=0)), 0
                    ),
                    func.coalesce(
                        func.sum(case((Task.status == TaskStatus.COMPLETED, 1), else_=0)), 0
                    ),
                    func.coalesce(func.sum(case((Task.created_at >= since, 1), else_=0)), 0),
                ).where(Task.user_id == user_id)
            )
        ).one()
        return TaskStats(total=row[0], pending=row[1], completed=row[2], created_since=row[3])

    async def delete_owned(self, user_id: uuid.UUID, task_id: uuid.UUID) -> int:
        """Delete the task if ``user_id`` owns it; returns rows deleted (0 or 1)."""
        result = await self.session.execute(
            delete(Task).where(Task.id == task_id, Task.user_id == user_id)
        )
        return result.rowcount or 0

    async def count_all(self) -> int:
        """How many tasks exist, of every owner (admin figures; one query)."""
        return int(await self.session.scalar(select(func.count()).select_from(Task)) or 0)
