from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.clock import FrozenClock, use_clock
from tests.features.auth.two_factor.support import step_start


@pytest.fixture
def frozen() -> Iterator[FrozenClock]:
    """The app clock frozen 10 s into a 30-second TOTP step (move it with ``advance``)."""
    clock = FrozenClock(step_start())
    clock.advance(seconds=10)
    with use_clock(clock):
        yield clock
