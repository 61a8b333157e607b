"""The Jinja filters every page uses (``shared.web.templating``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.clock import FrozenClock, use_clock
from shared.web.templating import datetime_utc, iso, time_ago

NOW = datetime(2024, 1, 15, 10, 30, 5, 123000, tzinfo=UTC)


def test_datetime_utc_shows_minutes_in_utc() -> None:
    assert datetime_utc(NOW) == "2024-01-15 10:30 UTC"
    # An aware time in another zone is converted, not labelled UTC as it stands.
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    assert datetime_utc(paris) == "2024-01-15 10:30 UTC"
    assert datetime_utc(datetime(2024, 3, 5, 7, 4, tzinfo=UTC)) == "2024-03-05 07:04 UTC"
    assert datetime_utc(None) == ""


def test_iso_is_the_stored_form() -> None:
    assert iso(NOW) == "2024-01-15T10:30:05.123Z"
    assert iso(None) == ""


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=44), "just now"),
        (timedelta(seconds=-30), "just now"),
        (timedelta(seconds=60), "1 minute ago"),
        (timedelta(minutes=3, seconds=20), "3 minutes ago"),
        (timedelta(minutes=59, seconds=40), "60 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=5, minutes=40), "6 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=2, hours=23), "2 days ago"),
    ],
)
def test_time_ago(age: timedelta, shown: str) -> None:
    with use_clock(FrozenClock(NOW)):
        assert time_ago(NOW - age) == shown


def test_time_ago_of_nothing_is_empty() -> None:
    assert time_ago(None) == ""
