"""``create_app`` for the soak's server process, with every SQL statement it sends counted.

A SQLAlchemy ``before_cursor_execute`` listener on every ``Engine`` of the process counts the
statements sent to the database, transaction control (``BEGIN``, ``COMMIT`` …) excepted. The
count does not depend on the notification poller's own bookkeeping. ``SIGUSR1`` writes
``"<request number> <count>"`` to the file named by ``STATEMENT_COUNT_FILE``, so the test reads
the count at the start and at the end of the window it measures.

Run as ``uvicorn tests.features.notifications.counting_app:create_app --factory``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

import app

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
_counted = {"statements": 0, "requests": 0}


def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
        _counted["statements"] += 1


def _report(signum: int, frame: Any) -> None:
    _counted["requests"] += 1
    Path(os.environ["STATEMENT_COUNT_FILE"]).write_text(
        f"{_counted['requests']} {_counted['statements']}"
    )


def create_app() -> Any:
    event.listen(Engine, "before_cursor_execute", _count)
    signal.signal(signal.SIGUSR1, _report)
    return app.create_app()
