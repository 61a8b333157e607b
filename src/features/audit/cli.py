"""``litestar audit prune``: delete audit events past the retention period (S52)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import click

from features.audit import service
from shared.config import get_settings
from shared.database import Database

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm]?)\s*$")
_UNITS = {"d": "days", "": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """``"365d"``, ``"12h"``, ``"30m"`` or a bare number of days → ``timedelta``.

    Raises ``click.BadParameter`` for anything else (or zero).
    """
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration like 365d, 12h or 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def describe_duration(age: timedelta) -> str:
    """``age`` in the largest whole unit: ``"365 day(s)"``, ``"12 hour(s)"``, ``"90 minute(s)"``."""
    minutes = int(age.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)} day(s)"
    if minutes % 60 == 0:
        return f"{minutes // 60} hour(s)"
    return f"{minutes} minute(s)"


@click.group("audit", help="The security audit trail.")
def audit_group() -> None:
    """``litestar audit …``."""


@audit_group.command("prune")
@click.option(
    "--older-than",
    "older_than",
    default=None,
    help="Delete events older than this (365d, 12h, 30m); default AUDIT_RETENTION_DAYS.",
)
def prune_command(older_than: str | None) -> None:
    """Delete audit events older than the retention period and print how many."""
    settings = get_settings()
    age = (
        parse_duration(older_than) if older_than else timedelta(days=settings.audit_retention_days)
    )

    async def main() -> int:
        db = Database(settings.database_url)
        try:
            return await service.prune(db, age)
        finally:
            await db.dispose()

    deleted = asyncio.run(main())
    click.echo(f"Deleted {deleted} audit event(s) older than {describe_duration(age)}.")


cli_commands = [audit_group]
