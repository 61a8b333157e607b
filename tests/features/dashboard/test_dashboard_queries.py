"""What one signed-in page costs the database (DESIGN.md §3 cost model), counted, not timed.

A signed-in GET reads: the session lookup (one statement, no transaction of its own on
SQLite), then one read transaction for the page and the navigation bell together. It never
writes while ``last_activity`` is fresh (written at most once per ``session_touch_seconds``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from shared.database import sqlite_driver
from tests.features.audit.helpers import names, wait_for_events
from tests.support import register

WRITES = ("INSERT", "UPDATE", "DELETE")


async def signed_up(client, app) -> None:
    """Sign up and wait until the sign-up's after-response writes (audit events) are done."""
    await register(client, "ann@example.com")
    await wait_for_events(app, lambda r: "authn_login_success" in names(r))
    await app.state.mail.join()


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs, and on SQLite every ``BEGIN``
    as the driver sends it (with the transaction's first statement, see
    ``shared.database.sqlite_driver``)."""
    seen: list[str] = []
    engine = app.state.db.engine.sync_engine

    def record(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    def run_recording_begin(conn, operation, parameters, many, begin=None, *args):
        if begin is not None:
            seen.append(begin)
        return real_run(conn, operation, parameters, many, begin, *args)

    real_run = sqlite_driver._run
    event.listen(engine, "before_cursor_execute", record)
    sqlite_driver._run = run_recording_begin
    try:
        yield seen
    finally:
        sqlite_driver._run = real_run
        event.remove(engine, "before_cursor_execute", record)


async def test_dashboard_reads_in_one_transaction_and_writes_nothing(client, app):
    await signed_up(client, app)
    await client.get("/dashboard")
    with statements(app) as seen:
        page = await client.get("/dashboard")
    assert page.status_code == 200 and 'data-stat="total">0<' in page.text
    assert not [s for s in seen if s.startswith(WRITES)]
    queries = [s for s in seen if s.startswith("SELECT")]
    # session + user; figures + newest tasks; bell (unread count + newest notifications)
    assert len(queries) == 3, queries
    assert "JOIN users" in queries[0] and "FROM sessions" in queries[0]
    assert "figures" in queries[1] and "FROM notifications" in queries[2]
    if app.state.db.is_sqlite:
        assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN"]


async def test_task_list_and_its_bell_share_one_read_transaction(client, app):
    await signed_up(client, app)
    await client.get("/tasks")
    with statements(app) as seen:
        page = await client.get("/tasks?q=report")
    assert page.status_code == 200
    assert not [s for s in seen if s.startswith(WRITES)]
    queries = [s for s in seen if s.startswith("SELECT")]
    # session + user; the page of tasks with its total (count(*) OVER (), no count query of
    # its own); bell
    assert len(queries) == 3, queries
    assert "FROM tasks" in queries[1] and "OVER ()" in queries[1]
    if app.state.db.is_sqlite:
        assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN"]


async def test_dashboard_figures_are_read_from_an_index_alone(client, app):
    """The figures count one user's tasks by status and creation date from the index
    ``(user_id, status, created_at)`` without visiting the rows (migration 0012); the query
    plan is SQLite's, the one the app runs on by default."""
    if not app.state.db.is_sqlite:
        pytest.skip("SQLite's query plan")
    await signed_up(client, app)
    sent: list[tuple[str, object]] = []
    engine = app.state.db.engine.sync_engine

    def record(_conn, _cursor, statement, parameters, *_args):
        if "figures" in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert (await client.get("/dashboard")).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    ((statement, parameters),) = sent
    async with app.state.db.engine.connect() as conn:
        plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
    details = [row[-1] for row in plan]
    assert any("COVERING INDEX ix_tasks_user_id_status_created_at" in d for d in details), details
