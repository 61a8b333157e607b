"""CompiledSelect: the same rows as ``Connection.execute``, the same events, the same errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, case, event, func, literal, select, text
from sqlalchemy.exc import DBAPIError

from features.notifications.models import Notification, NotificationType
from features.tasks.models import Task, TaskStatus
from features.users.models import User
from shared.database.compiled import CompiledSelect

_t = Task.__table__
_n = Notification.__table__

# UUIDs, ISO timestamps, an enum, NULLs, a literal the statement carries, bound parameters
# (one of them a LIMIT) and a label: every kind of value the hot reads return.
TASKS = (
    select(
        _t.c.id,
        _t.c.user_id,
        _t.c.title,
        _t.c.status,
        _t.c.created_at,
        case((_t.c.status == TaskStatus.COMPLETED, literal("done")), else_=None).label("done"),
        func.count().over().label("total"),
    )
    .where(_t.c.user_id == bindparam("user_id"), _t.c.created_at >= bindparam("since"))
    .order_by(_t.c.created_at.desc(), _t.c.id.desc())
    .limit(bindparam("limit"))
)


async def _owner_with_tasks(app) -> User:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with app.state.db.write() as session:
        user = User(email="owner@example.com", name="Owner", password_hash="x")
        session.add(user)
        await session.flush()
        for i, status in enumerate([TaskStatus.PENDING, TaskStatus.COMPLETED] * 3):
            session.add(
                Task(
                    user_id=user.id,
                    title=f"task {i}",
                    status=status,
                    created_at=start + timedelta(minutes=i),
                    updated_at=start + timedelta(minutes=i),
                )
            )
        session.add(
            Notification(
                user_id=user.id, type=NotificationType.INFO, title="hello", message="m", link=None
            )
        )
        await session.commit()
    return user


async def test_rows_equal_connection_execute_rows(client, app):
    user = await _owner_with_tasks(app)
    params = {"user_id": user.id, "since": datetime(2026, 1, 1, 0, 1, tzinfo=UTC), "limit": 4}
    compiled = CompiledSelect(TASKS)
    async with app.state.db.reader() as session:
        expected = (await session.execute(TASKS, params)).all()
        rows = await compiled.fetch(session, params)
        again = await compiled.fetch(session, {**params, "limit": 2})  # the plan is reused
    assert len(expected) == 4
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert rows[0]._fields == ("id", "user_id", "title", "status", "created_at", "done", "total")
    first = rows[0]
    assert first.user_id == user.id and isinstance(first.status, TaskStatus)
    assert first.created_at == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert first.done == "done" and rows[1].done is None and first.total == 5
    assert [row.title for row in again] == ["task 5", "task 4"]


async def test_no_rows_and_null_columns(client, app):
    user = await _owner_with_tasks(app)
    notifications = CompiledSelect(
        select(_n.c.title, _n.c.link, _n.c.read_at, _n.c.type).where(
            _n.c.user_id == bindparam("user_id")
        )
    )
    async with app.state.db.reader() as session:
        [row] = await notifications.fetch(session, {"user_id": user.id})
        none = await CompiledSelect(TASKS).fetch(
            session, {"user_id": user.id, "since": datetime(2027, 1, 1, tzinfo=UTC), "limit": 5}
        )
    assert row == ("hello", None, None, NotificationType.INFO)
    assert none == []


async def test_cursor_execute_listeners_see_the_statement(client, app):
    user = await _owner_with_tasks(app)
    engine = app.state.db.engine.sync_engine
    seen: list[tuple[str, str, object]] = []

    def before(_conn, _cursor, statement, parameters, _context, _many):
        seen.append(("before", statement, parameters))

    def after(_conn, _cursor, statement, parameters, _context, _many):
        seen.append(("after", statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        async with app.state.db.reader() as session:
            await CompiledSelect(TASKS).fetch(
                session, {"user_id": user.id, "since": datetime(2026, 1, 1, tzinfo=UTC), "limit": 3}
            )
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    selects = [entry for entry in seen if entry[1].startswith("SELECT tasks.id")]
    assert [entry[0] for entry in selects] == ["before", "after"]
    assert 3 in selects[0][2]  # the LIMIT, bound positionally


async def test_a_driver_error_reaches_the_caller_as_sqlalchemys_exception(client, app):
    missing = CompiledSelect(select(text("1 AS one")).select_from(text("no_such_table")))
    async with app.state.db.reader() as session:
        with pytest.raises(DBAPIError) as raised:
            await missing.fetch(session, {})
    assert "no_such_table" in str(raised.value)


async def test_expanding_parameters_are_refused(client, app):
    in_list = CompiledSelect(
        select(_t.c.id).where(_t.c.title.in_(bindparam("titles", expanding=True)))
    )
    async with app.state.db.reader() as session:
        with pytest.raises(ValueError, match="expanding"):
            await in_list.fetch(session, {"titles": ["a"]})
