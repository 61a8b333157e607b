"""The bell's rendered lists: kept per distinct content, never stale (SECURITY.md S51)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from features.notifications.bell import RenderedBellLists
from features.notifications.models import Notification
from features.notifications.service import NotificationService
from shared import clock
from tests.features.notifications.support import make, user_id
from tests.support import post_form, register


@pytest.fixture
async def ann(client, db):
    await register(client, "ann@example.com", name="Ann")
    return await user_id(db, "ann@example.com")


def env_of(app):
    return app.template_engine.engine


async def bell_rows(db, owner):
    async with db.reader() as session:
        return (await NotificationService(session).bell(owner)).recent


async def test_a_list_is_rendered_once_per_content_and_equals_a_fresh_render(app, db, ann):
    await make(db, ann, 3, link="/tasks")
    lists = RenderedBellLists(env_of(app))
    now = clock.now()
    first = lists.render(await bell_rows(db, ann), now)
    again = lists.render(await bell_rows(db, ann), now)  # equal rows from a new query
    assert again is first
    assert len(lists) == 1
    assert first == RenderedBellLists(env_of(app)).render(await bell_rows(db, ann), now)
    assert re.findall(r'<a href="/tasks">(Note \d)</a>', first) == ["Note 3", "Note 2", "Note 1"]
    assert first.count('class="note-dot"') == 3
    assert first.count("just now") == 3


async def test_a_row_read_or_time_passing_renders_anew(app, db, ann):
    made = await make(db, ann, 2)
    lists = RenderedBellLists(env_of(app))
    now = clock.now()
    before = lists.render(await bell_rows(db, ann), now)
    async with db.write() as session:
        await session.execute(
            update(Notification).where(Notification.id == made[0].id).values(read_at=now)
        )
    after_read = lists.render(await bell_rows(db, ann), now)
    assert before.count('class="note-dot"') == 2
    assert after_read.count('class="note-dot"') == 1
    later = lists.render(await bell_rows(db, ann), now + timedelta(minutes=3))
    assert later.count("3 minutes ago") == 2 and "just now" not in later
    assert len(lists) == 3


async def test_the_least_recently_shown_list_goes_first(app, db, ann, bob):
    await make(db, ann, 1)
    await make(db, bob, 1)
    lists = RenderedBellLists(env_of(app), size=1)
    now = clock.now()
    ann_list = lists.render(await bell_rows(db, ann), now)
    bob_list = lists.render(await bell_rows(db, bob), now)
    assert len(lists) == 1
    assert lists.render(await bell_rows(db, bob), now) is bob_list
    assert lists.render(await bell_rows(db, ann), now) is not ann_list  # evicted, rendered anew
    with pytest.raises(ValueError):
        RenderedBellLists(env_of(app), size=0)


async def test_nothing_is_kept_where_templates_reload(app, db, ann):
    """Development: an edited template shows at the next page view."""
    await make(db, ann, 1)
    env = env_of(app).overlay(auto_reload=True)
    lists = RenderedBellLists(env)
    first = lists.render(await bell_rows(db, ann), clock.now())
    again = lists.render(await bell_rows(db, ann), clock.now())
    assert first == again and first is not again
    assert len(lists) == 0


async def test_user_text_in_a_kept_list_is_escaped(app, db, ann):
    """S51: the kept HTML is the autoescaped template's output."""
    await make(db, ann, 1, title="<script>alert(1)</script>", message='"><img src=x>')
    html = RenderedBellLists(env_of(app)).render(await bell_rows(db, ann), clock.now())
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_the_page_bell_follows_reads_between_views(client, db, ann):
    """Over HTTP the list comes from the cache, yet reflects every change at once."""
    made = await make(db, ann, 3)
    first = await client.get("/dashboard")
    assert first.text.count('class="note-dot"') == 3
    response = await post_form(client, f"/notifications/{made[2].id}/read", {"return_to": "/"})
    assert response.status_code == 303
    second = await client.get("/dashboard")
    assert second.text.count('class="note-dot"') == 2
    await make(db, ann, 1, title="Fresh one")
    third = await client.get("/tasks")
    assert third.text.count('class="note-dot"') == 3
    assert "Fresh one" in third.text.split("data-notification-bell", 1)[1]
