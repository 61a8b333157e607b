"""All SQL about tasks. Every query is scoped to one owner (SECURITY.md S38)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, case, delete, func, select, true

from features.tasks.models import Task, TaskStatus
from shared.database import Page, Repository, escape_like, paged
from shared.database.compiled import CompiledSelect

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


@dataclass(frozen=True, slots=True)
class TaskOverview:
    """The dashboard's task figures and newest tasks, read in one query.

    ``recent`` holds named tuples with ``id``, ``title``, ``status`` (a :class:`TaskStatus`)
    and ``created_at`` (and the figures' columns), newest first.
    """

    stats: TaskStats
    recent: list[Any]


# Hot reads are built once and executed with bound parameters: constructing an ORM statement
# per request costs more CPU than SQLite spends running it (DESIGN.md §3 cost model).
_t = Task.__table__
_FIGURES = select(
    func.count().label("total"),
    func.coalesce(func.sum(case((_t.c.status == TaskStatus.PENDING, 1), else_=0)), 0).label(
        "pending"
    ),
    func.coalesce(func.sum(case((_t.c.status == TaskStatus.COMPLETED, 1), else_=0)), 0).label(
        "completed"
    ),
    func.coalesce(func.sum(case((_t.c.created_at >= bindparam("since"), 1), else_=0)), 0).label(
        "created_since"
    ),
).where(_t.c.user_id == bindparam("user_id"))


@lru_cache(maxsize=8)
def _newest(limit: int) -> Select[Any]:
    """The ``limit`` newest tasks of ``:user_id`` (Core; built once per ``limit``)."""
    return (
        select(_t.c.id, _t.c.title, _t.c.status, _t.c.created_at)
        .where(_t.c.user_id == bindparam("user_id"))
        .order_by(_t.c.created_at.desc(), _t.c.id.desc())
        .limit(limit)
    )


@lru_cache(maxsize=8)
def _overview(limit: int) -> CompiledSelect:
    """Figures (one row, always) LEFT JOIN the ``limit`` newest tasks: 1 to ``limit`` rows,
    each carrying the figures; a user without tasks gets one row of figures and NULL tasks.
    The dashboard runs it on every view: compiled once, run on the cursor."""
    figures = _FIGURES.subquery("figures")
    newest = _newest(limit).subquery("newest")
    return CompiledSelect(
        select(figures, newest)
        .select_from(figures.outerjoin(newest, true()))
        .order_by(newest.c.created_at.desc(), newest.c.id.desc())
    )


@lru_cache(maxsize=32)
def _search(sort: str, *, text: bool, status: bool) -> CompiledSelect:
    """The task list's query for one sort key, with or without a title filter (``:pattern``)
    and a status filter (``:status``): the columns the list shows, paged (Core; built once
    per combination)."""
    stmt = select(_t.c.id, _t.c.title, _t.c.status, _t.c.created_at).where(
        _t.c.user_id == bindparam("user_id")
    )
    if text:
        stmt = stmt.where(_t.c.title.like(bindparam("pattern"), escape="\\"))
    if status:
        stmt = stmt.where(_t.c.status == bindparam("status"))
    return paged(stmt.order_by(*SORTS[sort]))


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
    ) -> Page[Any]:
        """One page of ``user_id``'s tasks whose title contains ``text`` literally, as named tuples
        with ``id``, ``title``, ``status`` (a :class:`TaskStatus`) and ``created_at``.

        ``sort`` must be a key of :data:`SORTS` (``KeyError`` otherwise). Raises
        ``PageOutOfRange`` for a page past the end.
        """
        if sort not in SORTS:
            raise KeyError(sort)
        params: dict[str, Any] = {"user_id": user_id}
        if text:
            params["pattern"] = f"%{escape_like(text)}%"
        if status is not None:
            params["status"] = status
        stmt = _search(sort, text=bool(text), status=status is not None)
        return await self.paginate_rows(stmt, params, page, per_page)

    async def recent(self, user_id: uuid.UUID, limit: int) -> list[Row[Any]]:
        """The ``limit`` newest tasks of ``user_id`` (rows as in :class:`TaskOverview`)."""
        return list((await self.session.execute(_newest(limit), {"user_id": user_id})).all())

    async def stats(self, user_id: uuid.UUID, since: datetime) -> TaskStats:
        """Totals for ``user_id`` in one aggregate query."""
        row = (await self.session.execute(_FIGURES, {"user_id": user_id, "since": since})).one()
        return TaskStats(
            total=row.total,
            pending=row.pending,
            completed=row.completed,
            created_since=row.created_since,
        )

    async def overview(self, user_id: uuid.UUID, since: datetime, limit: int) -> TaskOverview:
        """:meth:`stats` and :meth:`recent` in one query (one round trip for the dashboard)."""
        rows = await _overview(limit).fetch(self.session, {"user_id": user_id, "since": since})
        first = rows[0]  # the figures row always exists
        return TaskOverview(
            stats=TaskStats(
                total=first.total,
                pending=first.pending,
                completed=first.completed,
                created_since=first.created_since,
            ),
            recent=[row for row in rows if row.id is not None],
        )

    async def delete_owned(self, user_id: uuid.UUID, task_id: uuid.UUID) -> int:
        """Delete the task if ``user_id`` owns it; returns rows deleted (0 or 1)."""
        result = await self.session.execute(
            delete(Task).where(Task.id == task_id, Task.user_id == user_id)
        )
        return result.rowcount or 0

    async def count_all(self) -> int:
        """How many tasks exist, of every owner (admin figures; one query)."""
        return int(await self.session.scalar(select(func.count()).select_from(Task)) or 0)
