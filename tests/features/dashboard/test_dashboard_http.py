"""The dashboard's figures over HTTP, with the app clock at the edges of the week."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from shared.clock import FrozenClock, use_clock
from tests.accounts import create_account
from tests.support import csrf, login

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)  # 00:00 UTC, the first instant of an ISO week
JUST_BEFORE = timedelta(milliseconds=1)  # the clock's resolution


def figures(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-stat="(\w+)">(\d+)<', html)}


async def add_task(client, title: str) -> None:
    response = await client.post(
        "/tasks", data={"title": title, "_csrf_token": await csrf(client, "/tasks")}
    )
    assert response.status_code == 303


async def test_created_this_week_counts_from_monday_midnight_utc(client, app):
    clock = FrozenClock(MONDAY - timedelta(days=1))
    with use_clock(clock):
        await create_account(app.state.db, "ann@example.com")
        assert (await login(client, "ann@example.com", remember=True)).status_code == 303
        clock.set(MONDAY - JUST_BEFORE)  # Sunday 23:59:59.999: last week
        await add_task(client, "last week")
        clock.set(MONDAY)  # Monday 00:00:00.000: this week
        await add_task(client, "this week")
        token = await csrf(client, "/tasks")
        page = await client.get("/tasks")
        task_id = re.search(r'action="/tasks/([0-9a-f-]{36})/status"', page.text).group(1)
        await client.post(
            f"/tasks/{task_id}/status", data={"status": "completed", "_csrf_token": token}
        )
        assert figures((await client.get("/dashboard")).text) == {
            "total": 2, "pending": 1, "completed": 1, "week": 1,
        }  # fmt: skip
        clock.set(MONDAY + timedelta(days=7) - JUST_BEFORE)  # the week's last instant
        assert figures((await client.get("/dashboard")).text)["week"] == 1
        clock.set(MONDAY + timedelta(days=7))  # next Monday 00:00: a new week
        html = (await client.get("/dashboard")).text
        assert figures(html) == {"total": 2, "pending": 1, "completed": 1, "week": 0}
        assert html.index("this week") < html.index("last week")  # newest first
