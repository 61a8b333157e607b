"""A small generic repository base (DESIGN.md §3) and pagination.

Repositories hide SQL from services and handlers. One class per table family; each
takes the request's :class:`AsyncSession` and never commits (the service does).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Insert, Select, bindparam, func, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from shared import clock
from shared.database.base import same_as_created_at
from shared.database.compiled import CompiledSelect

ModelT = TypeVar("ModelT")
T = TypeVar("T")


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape ``%``, ``_`` and the escape character so ``text`` matches literally in LIKE.

    Use with ``column.like(f"%{escape_like(q)}%", escape="\\\\")`` (SECURITY.md S49).
    """
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results. ``page`` is 1-based; ``pages`` is at least 1."""

    items: Sequence[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages there are: at least 1, even with no rows (an empty first page)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        """True unless this is page 1."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """True while a later page exists (``page < pages``)."""
        return self.page < self.pages


class PageOutOfRange(LookupError):
    """Raised by :meth:`Repository.paginate` for a page past the last one."""


def paged(stmt: Select[Any]) -> CompiledSelect:
    """``stmt`` (a Core select of columns) with the whole result's row count on every row as
    ``page_total`` (``count(*) OVER ()``) and ``LIMIT :limit OFFSET :offset``, as a
    :class:`~shared.database.compiled.CompiledSelect` for :meth:`Repository.paginate_rows`.
    Build it once and reuse it: the parameters change, the statement and its compiled form
    do not."""
    return CompiledSelect(
        stmt.add_columns(func.count().over().label("page_total"))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


@cache
def _insert_into(table: Any) -> Insert:
    """``INSERT INTO table`` (built once per table; the values come as parameters)."""
    return table.insert()  # type: ignore[no-any-return]


class Repository(Generic[ModelT]):
    """Base repository: ``get``, ``add``, ``insert``, ``delete``, ``paginate`` for one mapped
    class."""

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: uuid.UUID) -> ModelT | None:
        """Return the row with primary key ``id_`` or ``None``."""
        return await self.session.get(self.model, id_)

    async def add(self, obj: ModelT) -> ModelT:
        """Add ``obj`` and flush, so defaults (id, timestamps) are set; returns ``obj``."""
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def insert(self, obj: ModelT) -> ModelT:
        """Write a new ``obj`` with one Core ``INSERT``, outside the unit of work; returns it.

        Column defaults that run in Python (id, timestamps, a default status) are filled in
        on ``obj`` first, so it reads like a flushed row; it is not attached to the session
        (later changes to it are not saved). For hot paths that only create a row: the ORM
        flush costs more CPU than the statement (DESIGN.md §3 cost model). A constraint
        violation raises ``IntegrityError`` here, not at commit.
        """
        await self.session.execute(_insert_into(self.model.__table__), self._values(obj))
        return obj

    async def insert_many(self, objs: list[ModelT]) -> None:
        """:meth:`insert` for several new objects in ONE ``INSERT`` statement (the driver's
        ``executemany``). One constraint violation raises ``IntegrityError`` for all of them."""
        if objs:
            rows = [self._values(obj) for obj in objs]
            await self.session.execute(_insert_into(self.model.__table__), rows)

    def _values(self, obj: ModelT) -> dict[str, Any]:
        """``obj``'s column values by column key, Python-side defaults filled in on ``obj``.

        Every column whose default is :func:`shared.clock.now` gets the same instant, read
        once per row: a new row's ``updated_at`` equals its ``created_at`` even when the
        clock ticks a millisecond between the two columns.
        """
        values: dict[str, Any] = {}
        moment = None
        for attribute in inspect(self.model).column_attrs:
            column = attribute.columns[0]
            value = getattr(obj, attribute.key)
            if value is None and column.default is not None:
                default: Any = column.default
                wrapped = getattr(default.arg, "__wrapped__", None)
                if not default.is_callable:
                    value = default.arg
                elif wrapped is clock.now:
                    moment = value = moment or clock.now()
                elif default.arg is same_as_created_at:  # takes the context: not wrapped
                    value = values["created_at"]  # a column before this one (TimestampMixin)
                else:
                    value = default.arg(None)
                setattr(obj, attribute.key, value)
            values[column.key] = value
        return values

    async def delete(self, obj: ModelT) -> None:
        """Delete ``obj`` and flush."""
        await self.session.delete(obj)
        await self.session.flush()

    async def paginate_rows(
        self, query: CompiledSelect, params: dict[str, Any], page: int, per_page: int
    ) -> Page[Any]:
        """:meth:`paginate` for a Core select built once (:func:`paged`): runs ``query`` with
        ``params`` plus the page's ``limit`` and ``offset``; the items are its rows (named
        tuples).

        Raises :class:`PageOutOfRange` when ``page`` is past the last page.
        """
        limits = {"limit": per_page, "offset": (page - 1) * per_page}
        rows = await query.fetch(self.session, {**params, **limits})
        if not rows and page > 1:
            raise PageOutOfRange(page)
        total = rows[0].page_total if rows else 0
        return Page(items=rows, total=total, page=page, per_page=per_page)

    async def paginate(self, stmt: Select[Any], page: int, per_page: int) -> Page[Any]:
        """Run ``stmt`` (a select of one entity) for one page, counted in the same query.

        The total rides on every row as ``count(*) OVER ()`` (the count of the whole filtered
        result, before ``LIMIT``/``OFFSET``): one statement and one scan instead of a count
        query plus the page query. An empty page 1 means no rows at all; an empty later page
        is past the end.

        Raises :class:`PageOutOfRange` when ``page`` is past the last page (page 1 always exists).
        """
        rows = (
            await self.session.execute(
                stmt.add_columns(func.count().over().label("page_total"))
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
        ).all()
        if not rows and page > 1:
            raise PageOutOfRange(page)
        total = rows[0][-1] if rows else 0
        return Page(items=[row[0] for row in rows], total=total, page=page, per_page=per_page)
