"""``litestar notifications prune``: the retention command, run as an operator would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import click
import pytest
from sqlalchemy import update

from features.notifications.cli import describe_duration, parse_duration
from features.notifications.models import Notification
from shared import clock
from shared.config import ROOT_DIR
from tests.conftest import SECRET_KEY
from tests.features.notifications.support import make, rows, user_id
from tests.support import register


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
     ("7", timedelta(days=7))],
)  # fmt: skip
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("period", "text"),
    [(timedelta(days=90), "90 days"), (timedelta(days=1), "1 day"), (timedelta(hours=12), "12 hours"),
     (timedelta(hours=30), "1 day 6 hours"), (timedelta(minutes=1), "1 minute"),
     (timedelta(days=2, minutes=5), "2 days 5 minutes")],
)  # fmt: skip
def test_describe_duration_reads_as_words(period, text):
    assert describe_duration(period) == text


@pytest.mark.parametrize("text", ["0d", "-1d", "90x", "", "1.5d", "d"])
def test_parse_duration_refuses_nonsense(text):
    with pytest.raises(click.BadParameter):
        parse_duration(text)


async def prune(database_url: str, *args: str) -> subprocess.CompletedProcess:
    # In a thread, so this test's event loop can finish writes still in flight (the audit
    # events of the sign-up) while the command waits for the database.
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "test", "SECRET_KEY": SECRET_KEY}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "litestar", "--app-dir", "src", "notifications", "prune", *args],
        cwd=ROOT_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_prune_command_deletes_old_notifications(client, db, database_url):
    await register(client, "ann@example.com")
    ann = await user_id(db, "ann@example.com")
    old, recent = await make(db, ann, 2)
    async with db.writer() as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == old.id)
            .values(created_at=clock.now() - timedelta(days=91))
        )
        await session.execute(
            update(Notification)
            .where(Notification.id == recent.id)
            .values(created_at=clock.now() - timedelta(days=89))
        )
        await session.commit()
    result = await prune(database_url, "--older-than", "90d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Deleted 1 notification older than 90 days."
    assert [n.id for n in await rows(db, ann)] == [recent.id]
    result = await prune(database_url)  # the default comes from NOTIFICATION_RETENTION_DAYS (90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Deleted 0 notifications older than 90 days."
    hours = await prune(database_url, "--older-than", "36h")
    assert hours.stdout.strip() == "Deleted 1 notification older than 1 day 12 hours."
    assert await rows(db, ann) == []
    bad = await prune(database_url, "--older-than", "soon")
    assert bad.returncode != 0 and "e.g. 90d" in bad.stderr
