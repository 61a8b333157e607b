"""``litestar notifications prune --older-than 90d``: the retention job."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import click

from features.notifications.service import NotificationService
from shared.config import get_settings
from shared.database import Database

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([dhm]?)\s*$")
_UNITS = {"d": "days", "": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or a bare number of days → ``timedelta``.

    Raises ``click.BadParameter`` for anything else (including zero).
    """
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r}: use a positive number with d, h or m, e.g. 90d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def describe_duration(period: timedelta) -> str:
    """``timedelta`` → ``90 days``, ``12 hours``, ``1 day 6 hours``, ``30 minutes``.

    Whole minutes only (what :func:`parse_duration` produces); zero reads ``0 minutes``.
    """
    minutes = int(period.total_seconds() // 60)
    parts = []
    for size, unit in ((24 * 60, "day"), (60, "hour"), (1, "minute")):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 minutes"


async def _prune(database_url: str, older_than: timedelta) -> int:
    db = Database(database_url)
    try:
        async with db.writer() as session:
            return await NotificationService(session).prune(older_than)
    finally:
        await db.dispose()


@click.group(name="notifications", help="Notification maintenance.")
def notifications_group() -> None:
    """The ``litestar notifications`` command group."""


@notifications_group.command(name="prune")
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Delete notifications older than this (e.g. 90d, 12h). "
    "Default: NOTIFICATION_RETENTION_DAYS (90).",
)
def prune(older_than: str | None) -> None:
    """Delete every user's notifications older than the retention period."""
    settings = get_settings()
    period = (
        parse_duration(older_than)
        if older_than
        else timedelta(days=settings.notification_retention_days)
    )
    count = asyncio.run(_prune(settings.database_url, period))
    click.echo(
        f"Deleted {count} notification{'s' if count != 1 else ''} "
        f"older than {describe_duration(period)}."
    )


cli_commands = [notifications_group]
