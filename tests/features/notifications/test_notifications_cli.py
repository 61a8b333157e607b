"""``litestar notifications prune``: the retention command, run as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import click
import pytest
from sqlalchemy import update

from features.notifications.cli import parse_duration
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


@pytest.mark.parametrize("text", ["0d", "-1d", "90x", "", "1.5d", "d"])
def test_parse_duration_refuses_nonsense(text):
    with pytest.raises(click.BadParameter):
        parse_duration(text)


def prune(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "test", "SECRET_KEY": SECRET_KEY}
    return subprocess.run(
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
    result = prune(database_url, "--older-than", "90d")
    assert result.returncode == 0, result.stderr
    assert "Deleted 1 notification older than 90 days" in result.stdout
    assert [n.id for n in await rows(db, ann)] == [recent.id]
    result = prune(database_url)  # the default comes from NOTIFICATION_RETENTION_DAYS (90)
    assert result.returncode == 0 and "Deleted 0 notifications" in result.stdout
    bad = prune(database_url, "--older-than", "soon")
    assert bad.returncode != 0 and "e.g. 90d" in bad.stderr
