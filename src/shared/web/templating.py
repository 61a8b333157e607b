"""Jinja filters shared by every template."""

from __future__ import annotations

from datetime import datetime

from jinja2 import Environment

from shared import clock
from shared.database.types import format_timestamp


def datetime_utc(value: datetime | None) -> str:
    """``2024-01-15 10:30 UTC``; empty for ``None``."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def iso(value: datetime | None) -> str:
    """The ISO-8601 form stored in the database, for ``<time datetime=…>``."""
    return format_timestamp(value) if value else ""


def time_ago(value: datetime | None) -> str:
    """A short relative time: ``just now``, ``3 minutes ago``, ``2 days ago``."""
    if value is None:
        return ""
    seconds = int((clock.now() - value).total_seconds())
    if seconds < 45:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size) if unit != "day" else seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def configure(env: Environment, *, reload: bool = False) -> None:
    """Register the filters on a Jinja environment; ``reload`` keeps Jinja's per-render check
    of the template files' modification times (development only: elsewhere templates are
    compiled once and never re-checked)."""
    env.auto_reload = reload
    env.filters["datetime_utc"] = datetime_utc
    env.filters["iso"] = iso
    env.filters["time_ago"] = time_ago
