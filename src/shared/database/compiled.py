"""Hot reads compiled once and run on the held connection's DBAPI cursor.

For every statement, ``Connection.execute`` looks the compiled form up in a cache, builds an
execution context, processes parameters by name, and wraps the cursor in a ``Result`` whose
rows convert their values on access. For the reads of every signed-in page (the session
lookup, the bell) and of the busiest pages (the dashboard's figures, the task list) that cost
several times what SQLite spends running the SQL (DESIGN.md §3 cost model): served on one
core, moving the dashboard's three reads here took it from 2.48 to 2.07 ms of CPU per
request (``bench.duel``, 1.19× the requests).

:class:`CompiledSelect` keeps the rest of SQLAlchemy — the Core statement, its compilation
for the dialect, the column types' bind and result processors, the pool, the driver, the
``before_cursor_execute`` / ``after_cursor_execute`` events and SQLAlchemy's exceptions —
and does the per-call work once: a statement is compiled per dialect into its SQL text, the
order of its positional parameters, the literal values it carries and the processors of its
parameters and columns. A call then binds, runs that text on the cursor of a connection the
caller already holds, and converts the rows into plain named tuples (which compare and hash
as tuples, in C).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession


class _Plan:
    """A statement compiled for one dialect: SQL text, parameter order, processors."""

    __slots__ = ("binds", "defaults", "make", "names", "results", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional:
            raise ValueError(f"{dialect.name}: a positional parameter style is required")
        if any(bind.expanding or bind.literal_execute for bind in compiled.binds.values()):
            raise ValueError(
                "expanding (IN-list) and literal-execute parameters are rendered per call"
            )
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values the statement carries itself (literals such as a status in a CASE).
        self.defaults: dict[str, Any] = dict(compiled.construct_params(_check=False))
        self.binds: dict[str, Callable[[Any], Any]] = {
            name: fn
            for name, bind in compiled.binds.items()
            if (fn := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        columns = statement.selected_columns
        self.results: list[tuple[int, Callable[[Any], Any]]] = [
            (index, fn)
            for index, column in enumerate(columns)
            if (fn := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        ]
        self.make: Callable[[Any], tuple[Any, ...]] = namedtuple(  # type: ignore[misc]
            "Row", list(columns.keys())
        )._make

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for ``values`` (bind names → values), processed."""
        out = []
        for name in self.names:
            value = values[name] if name in values else self.defaults[name]
            fn = self.binds.get(name)
            out.append(value if fn is None or value is None else fn(value))
        return tuple(out)

    def rows(self, raw: list[Any]) -> list[Any]:
        """The driver's rows as named tuples, each value converted by its column's type."""
        make, results = self.make, self.results
        out = []
        for row in raw:
            values = list(row)
            for index, fn in results:
                values[index] = fn(values[index])
            out.append(make(values))
        return out


class CompiledSelect:
    """A Core ``SELECT`` compiled once per dialect and run on a held connection's DBAPI cursor.

    ``run(connection, params)`` (synchronous: inside SQLAlchemy's greenlet, as in
    ``AsyncConnection.run_sync``) and ``await fetch(session, params)`` return a list of named
    tuples whose fields are the statement's selected column keys, each value converted by its
    column type exactly as ``Connection.execute`` converts it. ``params`` maps the statement's
    ``bindparam`` names to values (``KeyError`` for a missing one).

    Listeners of ``before_cursor_execute`` and ``after_cursor_execute`` are called as for any
    statement (with ``context=None``). When the driver raises, the statement is run once more
    through ``Connection.execute``, so the error reaches the caller as SQLAlchemy's exception
    (``OperationalError`` and so on) after SQLAlchemy's own handling (``handle_error``
    listeners, a lost connection invalidated); a statement that then succeeds returns its rows.
    A read has no effect to repeat. Raises ``ValueError`` at first use for a statement with
    expanding (IN-list) or literal-execute parameters, whose SQL differs per call.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._plans: dict[Dialect, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.statement, dialect)
        return plan

    def run(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run on ``connection``'s DBAPI connection; the rows as named tuples."""
        plan = self._plan(connection.dialect)
        sql, parameters = plan.sql, plan.parameters(params)
        dispatch = connection.dispatch
        cursor = connection.connection.cursor()
        try:
            for listener in dispatch.before_cursor_execute:
                sql, parameters = listener(connection, cursor, sql, parameters, None, False)
            try:
                cursor.execute(sql, parameters)
                raw = cursor.fetchall()
            except connection.dialect.loaded_dbapi.Error:
                # SQLAlchemy's path reports (and recovers from) the error as usual.
                result = connection.execute(self.statement, dict(params))
                return [plan.make(tuple(row)) for row in result]
            for listener in dispatch.after_cursor_execute:
                listener(connection, cursor, sql, parameters, None, False)
        finally:
            cursor.close()
        return plan.rows(raw)

    async def fetch(self, session: AsyncSession, params: Mapping[str, Any]) -> list[Any]:
        """Run on the connection of ``session``'s transaction (begun first if it was not)."""
        # One switch into SQLAlchemy's greenlet for both steps.
        return await session.run_sync(lambda sync: self.run(sync.connection(), params))
