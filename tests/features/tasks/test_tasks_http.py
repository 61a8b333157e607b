"""Tasks over HTTP: CRUD, search, filter, sort, pages, bad input (SECURITY.md S38, S49)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from features.tasks.models import Task
from tests.support import csrf, register

TITLE_RE = re.compile(r'<span class="task-title">([^<]*)</span>')


async def add(client, title: str):
    return await client.post(
        "/tasks", data={"title": title, "_csrf_token": await csrf(client, "/tasks")}
    )


def titles(html: str) -> list[str]:
    return TITLE_RE.findall(html)


async def task_count(app) -> int:
    async with app.state.db.reader() as session:
        return await session.scalar(select(func.count()).select_from(Task))


async def first_task_id(app, title: str) -> str:
    async with app.state.db.reader() as session:
        return str(await session.scalar(select(Task.id).where(Task.title == title)))


async def test_create_list_rename_complete_and_delete(client, app):
    await register(client, "ann@example.com")
    response = await add(client, "  Buy   milk ")
    assert response.status_code == 303 and response.headers["location"] == "/tasks"
    page = await client.get("/tasks")
    assert titles(page.text) == ["Buy milk"]
    assert "Task added." in page.text
    task_id = await first_task_id(app, "Buy milk")
    token = await csrf(client, "/tasks")

    edit = await client.get(f"/tasks/{task_id}/edit")
    assert edit.status_code == 200 and 'value="Buy milk"' in edit.text
    response = await client.post(
        f"/tasks/{task_id}/edit", data={"title": "Buy oat milk", "_csrf_token": token}
    )
    assert response.status_code == 303
    response = await client.post(
        f"/tasks/{task_id}/status", data={"status": "completed", "_csrf_token": token}
    )
    assert response.status_code == 303
    completed = await client.get("/tasks?status=completed")
    assert titles(completed.text) == ["Buy oat milk"]
    assert titles((await client.get("/tasks?status=pending")).text) == []
    await client.post(f"/tasks/{task_id}/status", data={"status": "pending", "_csrf_token": token})
    assert titles((await client.get("/tasks?status=pending")).text) == ["Buy oat milk"]
    response = await client.post(f"/tasks/{task_id}/delete", data={"_csrf_token": token})
    assert response.status_code == 303
    assert await task_count(app) == 0


async def test_return_to_keeps_the_list_state_and_refuses_other_paths(client, app):
    await register(client, "ann@example.com")
    await add(client, "One")
    task_id = await first_task_id(app, "One")
    token = await csrf(client, "/tasks")
    ok = await client.post(
        f"/tasks/{task_id}/status",
        data={
            "status": "completed",
            "return_to": "/tasks?status=pending&page=1",
            "_csrf_token": token,
        },
    )
    assert ok.headers["location"] == "/tasks?status=pending&page=1"
    for hostile in ("https://evil.example/tasks", "//evil.example", "/dashboard", "/tasks\\x"):
        response = await client.post(
            f"/tasks/{task_id}/status",
            data={"status": "pending", "return_to": hostile, "_csrf_token": token},
        )
        assert response.headers["location"] == "/tasks", hostile


async def test_empty_and_overlong_titles_are_refused_and_nothing_is_written(client, app):
    await register(client, "ann@example.com")
    for title, message in (("   ", "Enter a title."), ("x" * 201, "at most 200 characters")):
        response = await add(client, title)
        assert response.status_code == 422
        assert message in response.text
    assert await task_count(app) == 0
    assert (await add(client, "x" * 200)).status_code == 303
    task_id = await first_task_id(app, "x" * 200)
    token = await csrf(client, "/tasks")
    response = await client.post(f"/tasks/{task_id}/edit", data={"title": "", "_csrf_token": token})
    assert response.status_code == 422 and "Enter a title." in response.text
    async with app.state.db.reader() as session:
        assert await session.scalar(select(Task.title)) == "x" * 200


async def test_s49_search_matches_percent_and_underscore_literally(client):
    await register(client, "ann@example.com")
    for title in ("100% done", "1000 done", "snake_case", "snakeXcase", "plain"):
        await add(client, title)
    assert titles((await client.get("/tasks", params={"q": "100%"})).text) == ["100% done"]
    assert titles((await client.get("/tasks", params={"q": "e_c"})).text) == ["snake_case"]
    assert titles((await client.get("/tasks", params={"q": "%"})).text) == ["100% done"]
    assert titles((await client.get("/tasks", params={"q": "\\"})).text) == []
    assert (await client.get("/tasks", params={"q": "a\x00b"})).status_code == 200
    assert (await add(client, "nul\x00byte")).status_code == 422
    hostile = await client.get("/tasks", params={"q": "' OR 1=1 --"})
    assert hostile.status_code == 200 and titles(hostile.text) == []


async def test_s49_unknown_sort_or_status_is_422_and_bad_pages_are_404(client):
    await register(client, "ann@example.com")
    await add(client, "One")
    for params, message in (
        ({"sort": "password_hash"}, "Unknown sort order"),
        ({"status": "deleted"}, "Unknown status"),
    ):
        response = await client.get("/tasks", params=params)
        assert response.status_code == 422
        assert message in response.text
        assert titles(response.text) == ["One"]  # the defaults are shown
    for page in ("0", "-1", "abc", "2", "1e3", "９"):
        response = await client.get("/tasks", params={"page": page})
        assert response.status_code == 404, page
        assert "That page does not exist." in response.text


async def test_sorting_by_each_allowed_key(client, app):
    await register(client, "ann@example.com")
    for title in ("banana", "Apple", "cherry"):
        await add(client, title)
    assert titles((await client.get("/tasks")).text) == ["cherry", "Apple", "banana"]
    assert titles((await client.get("/tasks?sort=oldest")).text) == ["banana", "Apple", "cherry"]
    assert titles((await client.get("/tasks?sort=title")).text) == ["Apple", "banana", "cherry"]
    await add(client, "date")
    token = await csrf(client, "/tasks")
    async with app.state.db.reader() as session:
        ids = dict((await session.execute(select(Task.title, Task.id))).all())
    for title in ("Apple", "cherry"):
        await client.post(
            f"/tasks/{ids[title]}/status", data={"status": "completed", "_csrf_token": token}
        )
    # Status in its stored order (completed, then pending), newest first within each.
    status_sorted = await client.get("/tasks?sort=status")
    assert titles(status_sorted.text) == ["cherry", "Apple", "date", "banana"]


async def test_pagination_through_60_tasks(client):
    await register(client, "ann@example.com")
    for n in range(60):
        await add(client, f"Task {n:02d}")
    first = await client.get("/tasks")
    assert titles(first.text)[0] == "Task 59" and len(titles(first.text)) == 20
    assert 'href="/tasks?page=2"' in first.text and 'href="/tasks?page=3"' in first.text
    third = await client.get("/tasks?page=3")
    assert titles(third.text)[-1] == "Task 00" and len(titles(third.text)) == 20
    assert (await client.get("/tasks?page=4")).status_code == 404
    filtered = await client.get("/tasks?q=Task+0&page=1")
    assert len(titles(filtered.text)) == 10 and "page=2" not in filtered.text


async def test_s38_another_users_task_is_404_and_unchanged(client, other_client, app):
    await register(client, "ann@example.com")
    await add(client, "Ann's secret")
    task_id = await first_task_id(app, "Ann's secret")
    await register(other_client, "bob@example.com", name="Bob")
    token = await csrf(other_client, "/tasks")
    assert (await other_client.get(f"/tasks/{task_id}/edit")).status_code == 404
    for path, data in (
        (f"/tasks/{task_id}/edit", {"title": "pwned"}),
        (f"/tasks/{task_id}/status", {"status": "completed"}),
        (f"/tasks/{task_id}/delete", {}),
    ):
        response = await other_client.post(path, data={**data, "_csrf_token": token})
        assert response.status_code == 404, path
    bob_list = await other_client.get("/tasks")
    assert "Ann&#39;s secret" not in bob_list.text and "secret" not in bob_list.text
    async with app.state.db.reader() as session:
        task = await session.scalar(select(Task))
    assert task.title == "Ann's secret" and task.status.value == "pending"
    dashboard = await other_client.get("/dashboard")
    assert 'data-stat="total">0<' in dashboard.text


async def test_malformed_task_ids_are_404(client):
    await register(client, "ann@example.com")
    token = await csrf(client, "/tasks")
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "1%27%20OR%201=1"):
        assert (await client.get(f"/tasks/{bad}/edit")).status_code == 404
        assert (
            await client.post(f"/tasks/{bad}/delete", data={"_csrf_token": token})
        ).status_code == 404


async def test_unknown_status_value_in_a_post_is_422(client, app):
    await register(client, "ann@example.com")
    await add(client, "One")
    task_id = await first_task_id(app, "One")
    token = await csrf(client, "/tasks")
    response = await client.post(
        f"/tasks/{task_id}/status", data={"status": "archived", "_csrf_token": token}
    )
    assert response.status_code == 422 and "Choose pending or completed." in response.text


async def test_s51_titles_are_escaped(client):
    await register(client, "ann@example.com")
    await add(client, "<script>alert(1)</script>")
    page = await client.get("/tasks")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_dashboard_shows_real_figures(client, app):
    await register(client, "ann@example.com")
    for title in ("a", "b", "c"):
        await add(client, title)
    task_id = await first_task_id(app, "b")
    await client.post(
        f"/tasks/{task_id}/status",
        data={"status": "completed", "_csrf_token": await csrf(client, "/tasks")},
    )
    page = await client.get("/dashboard")
    for stat, value in (("total", 3), ("pending", 2), ("completed", 1), ("week", 3)):
        assert f'data-stat="{stat}">{value}<' in page.text
