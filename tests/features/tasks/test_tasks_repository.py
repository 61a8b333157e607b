"""TaskRepository.search: one owner's rows, filtered, sorted and paged in one Core query
(SECURITY.md S38, S49)."""

from __future__ import annotations

import pytest

from features.tasks.models import Task, TaskStatus
from features.tasks.repository import TaskRepository
from features.users.models import User
from shared.database.repository import PageOutOfRange


async def _user_with_tasks(session, email: str, titles: list[tuple[str, TaskStatus]]) -> User:
    user = User(email=email, name=email, password_hash="x")
    session.add(user)
    await session.flush()
    for title, status in titles:
        await TaskRepository(session).insert(Task(user_id=user.id, title=title, status=status))
    return user


async def test_search_returns_one_owners_rows_filtered_sorted_and_paged(client, app):
    pending, done = TaskStatus.PENDING, TaskStatus.COMPLETED
    async with app.state.db.write() as session:
        owner = await _user_with_tasks(
            session,
            "owner@example.com",
            [("b 50% report", pending), ("a report", done), ("c report_x", pending), ("d", done)],
        )
        await _user_with_tasks(session, "other@example.com", [("a report", pending)])  # S38

    async with app.state.db.reader() as session:
        tasks = TaskRepository(session)
        found = await tasks.search(
            owner.id, text="report", status=None, sort="title", page=1, per_page=2
        )
        assert found.total == 3 and found.page == 1
        assert [(r.title, r.status) for r in found.items] == [
            ("a report", done),
            ("b 50% report", pending),
        ]
        assert all(r.id and r.created_at.tzinfo is not None for r in found.items)
        second = await tasks.search(
            owner.id, text="report", status=None, sort="title", page=2, per_page=2
        )
        assert [r.title for r in second.items] == ["c report_x"] and second.total == 3

        # "%" and "_" match themselves only (S49); a status filter narrows the same query.
        literal = await tasks.search(
            owner.id, text="50%", status=None, sort="created", page=1, per_page=20
        )
        assert [r.title for r in literal.items] == ["b 50% report"]
        underscore = await tasks.search(
            owner.id, text="t_", status=None, sort="created", page=1, per_page=20
        )
        assert [r.title for r in underscore.items] == ["c report_x"]
        completed = await tasks.search(
            owner.id, text="", status=done, sort="oldest", page=1, per_page=20
        )
        assert [r.title for r in completed.items] == ["a report", "d"]

        nothing = await tasks.search(
            owner.id, text="absent", status=None, sort="created", page=1, per_page=20
        )
        assert nothing.items == [] and nothing.total == 0  # page 1 always exists
        with pytest.raises(PageOutOfRange):
            await tasks.search(
                owner.id, text="report", status=None, sort="title", page=3, per_page=2
            )
        with pytest.raises(KeyError):  # sort keys come from an allow-list (S49)
            await tasks.search(owner.id, text="", status=None, sort="id; --", page=1, per_page=2)
