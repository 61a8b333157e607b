"""The application clock: one place that says what time it is.

Every rule that depends on time (session timeouts, token expiry, TOTP windows) asks
:func:`now` instead of calling :func:`datetime.now` directly, so tests can freeze or move
time with :func:`use_clock` and check a rule at its exact boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


def _system_now() -> datetime:
    return datetime.now(UTC)


_current: Callable[[], datetime] = _system_now


def now() -> datetime:
    """Return the current time as a timezone-aware UTC ``datetime`` (millisecond precision).

    Milliseconds are what the database stores (ISO-8601 text with ``.mmmZ``), so values
    compare equal before and after a round trip.
    """
    value = _current()
    return value.replace(microsecond=(value.microsecond // 1000) * 1000)


class FrozenClock:
    """A clock that stands still until moved; for tests of time-dependent rules.

    ``clock.advance(seconds=61)`` moves it forward; ``clock.set(dt)`` jumps to ``dt`` (aware UTC).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.value = (start or _system_now()).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by ``timedelta(**delta)`` and return the new time."""
        self.value = self.value + timedelta(**delta)
        return self.value

    def set(self, value: datetime) -> None:
        """Jump to ``value`` (must be timezone-aware)."""
        self.value = value.astimezone(UTC)


@contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[Callable[[], datetime]]:
    """Make :func:`now` read ``clock`` inside the ``with`` block (process-wide; tests only)."""
    global _current
    previous = _current
    _current = clock
    try:
        yield clock
    finally:
        _current = previous
