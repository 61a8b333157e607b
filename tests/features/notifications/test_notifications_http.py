"""Notification pages over HTTP: bell, list, filters, pages, actions, ownership and CSRF
(SECURITY.md S21, S24, S38, S51)."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import event

from features.notifications.service import NotificationService
from tests.features.notifications.support import make, rows, user_id
from tests.support import csrf, post_form, register


@pytest.fixture
async def ann(client, db) -> uuid.UUID:
    await register(client, "ann@example.com", name="Ann")
    return await user_id(db, "ann@example.com")


def bell_count(html: str) -> str | None:
    match = re.search(r'<span class="bell-count" data-bell-count( hidden)?>(\d+)</span>', html)
    assert match, "page has no bell"
    return None if match.group(1) else match.group(2)


def titles(html: str) -> list[str]:
    """Notification titles in the page's main content (the bell's list is in the header)."""
    html = html.split('<main id="main"', 1)[-1]
    return re.findall(r'<span class="note-title">(?:<a href="[^"]*">)?([^<]*)', html)


async def test_bell_shows_unread_count_and_ten_newest_on_every_page(client, db, ann, bob):
    page = await client.get("/dashboard")
    assert bell_count(page.text) is None
    assert "No notifications yet." in page.text
    await make(db, ann, 12, link="/tasks")
    await make(db, bob, 4)
    page = await client.get("/tasks")
    assert bell_count(page.text) == "12"
    bell = page.text.split("data-notification-bell", 1)[1].split("</details>", 1)[0]
    assert re.findall(r'<span class="note-title">(?:<a href="[^"]*">)?([^<]*)', bell) == [
        f"Note {i}" for i in range(12, 2, -1)
    ]
    assert bell.count('class="note-dot"') == 10
    assert '<a href="/tasks">Note 12</a>' in bell
    assert "just now" in bell
    assert 'action="/notifications/read-all"' in bell


async def test_bell_costs_one_query_per_page(client, app, ann, db):
    await make(db, ann, 3)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        page = await client.get("/dashboard")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert bell_count(page.text) == "3"
    assert len([s for s in statements if "FROM notifications" in s]) == 1


async def test_redirects_do_not_query_the_bell(client, app, ann, db):
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await client.get("/")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code in (302, 303, 307)
    assert not [s for s in statements if "FROM notifications" in s]


async def test_guests_get_no_bell(client):
    page = await client.get("/login")
    assert "data-notification-bell" not in page.text
    assert "notifications.js" not in page.text


async def test_list_is_newest_first_and_paginated(client, db, ann):
    await make(db, ann, 25)
    first = await client.get("/notifications")
    assert first.status_code == 200
    assert titles(first.text) == [f"Note {i}" for i in range(25, 5, -1)]
    assert "25 notifications" in first.text
    assert 'href="/notifications?page=2"' in first.text
    second = await client.get("/notifications?page=2")
    assert titles(second.text) == [f"Note {i}" for i in range(5, 0, -1)]
    assert (await client.get("/notifications?page=3")).status_code == 404
    assert (await client.get("/notifications?page=0")).status_code == 404
    assert (await client.get("/notifications?page=x")).status_code == 404


async def test_unread_filter_and_unknown_filter(client, db, ann):
    made = await make(db, ann, 3)
    token = await csrf(client, "/notifications")
    await client.post(f"/notifications/{made[0].id}/read", data={"_csrf_token": token})
    unread = await client.get("/notifications?filter=unread")
    assert titles(unread.text) == ["Note 3", "Note 2"]
    assert "2 notifications unread" in unread.text
    bad = await client.get("/notifications?filter=%3Cscript%3E")
    assert bad.status_code == 422
    assert "Unknown filter" in bad.text
    assert titles(bad.text) == ["Note 3", "Note 2", "Note 1"]


async def test_mark_one_read_and_mark_all_read(client, db, ann):
    made = await make(db, ann, 3)
    response = await post_form(
        client,
        f"/notifications/{made[1].id}/read",
        {"return_to": "/notifications?filter=unread"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/notifications?filter=unread"
    assert [n.read_at is not None for n in await rows(db, ann)] == [False, True, False]
    page = await client.get("/dashboard")
    assert bell_count(page.text) == "2"
    response = await post_form(client, "/notifications/read-all", {"return_to": "/tasks"})
    assert response.status_code == 303 and response.headers["location"] == "/tasks"
    assert all(n.read_at is not None for n in await rows(db, ann))
    page = await client.get("/tasks")
    assert "Marked 2 notifications as read." in page.text
    assert bell_count(page.text) is None


async def test_return_to_must_be_local(client, app, ann):
    response = await post_form(
        client, "/notifications/read-all", {"return_to": "https://evil.example/"}
    )
    assert response.headers["location"] == "/notifications"


async def test_delete_one_and_delete_all_read(client, db, ann):
    made = await make(db, ann, 4)
    response = await post_form(client, f"/notifications/{made[0].id}/delete", {})
    assert response.status_code == 303
    assert [n.title for n in await rows(db, ann)] == ["Note 4", "Note 3", "Note 2"]
    await post_form(client, f"/notifications/{made[1].id}/read", {})
    await post_form(client, f"/notifications/{made[2].id}/read", {})
    response = await post_form(client, "/notifications/delete-read", {})
    assert response.status_code == 303
    assert [n.title for n in await rows(db, ann)] == ["Note 4"]
    assert "Deleted 2 read notifications." in (await client.get("/notifications")).text


async def test_s38_another_users_notification_is_404_and_unchanged(client, db, ann, bob):
    [theirs] = await make(db, bob, 1, title="Bob's secret")
    for action in ("read", "delete"):
        response = await post_form(client, f"/notifications/{theirs.id}/{action}", {})
        assert response.status_code == 404, action
    for path in (f"/notifications/{uuid.uuid4()}/read", "/notifications/not-a-uuid/delete"):
        assert (await post_form(client, path, {})).status_code == 404
    await post_form(client, "/notifications/read-all", {})
    await post_form(client, "/notifications/delete-read", {})
    [still] = await rows(db, bob)
    assert still.read_at is None and still.title == "Bob's secret"
    mine = await client.get("/notifications")
    assert "Bob&#39;s secret" not in mine.text and "Bob's secret" not in mine.text
    assert bell_count(mine.text) is None
    async with db.reader() as session:
        assert (await NotificationService(session).bell(bob)).unread == 1


async def test_s21_actions_without_csrf_token_are_refused_and_change_nothing(client, db, ann):
    [note] = await make(db, ann, 1)
    await post_form(client, f"/notifications/{note.id}/read", {})  # make it read, then try
    for path in (
        f"/notifications/{note.id}/delete",
        "/notifications/delete-read",
        "/notifications/read-all",
    ):
        assert (await client.post(path, data={})).status_code == 403
        assert (await client.post(path, data={"_csrf_token": "forged"})).status_code == 403
    [still] = await rows(db, ann)
    assert still.id == note.id


async def test_s24_get_never_changes_state(client, db, ann):
    [note] = await make(db, ann, 1)
    for path in (
        f"/notifications/{note.id}/read",
        f"/notifications/{note.id}/delete",
        "/notifications/read-all",
        "/notifications/delete-read",
    ):
        assert (await client.get(path)).status_code in (404, 405), path
    [still] = await rows(db, ann)
    assert still.read_at is None


async def test_s51_notification_text_is_escaped(client, db, ann):
    await make(db, ann, 1, title="<script>alert(1)</script>", message='<img src=x onerror="x">')
    for path in ("/dashboard", "/notifications"):
        page = await client.get(path)
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<img src=x" not in page.text


async def test_anonymous_stream_and_pages_need_sign_in(client):
    for path in ("/notifications", "/notifications/stream"):
        response = await client.get(path)
        assert response.status_code in (302, 303, 401), path
