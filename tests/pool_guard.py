"""Catch code that holds a pooled connection while it asks the same pool for another.

Every pool is a fixed set of connections (:func:`shared.database.engine.build_engine`): a
request that holds one connection and waits for a second from the same pool deadlocks once
as many such requests run at once as the pool has connections, until the pool's timeout
turns them all into 503s. On SQLite readers and the writer have separate pools; on
PostgreSQL they share one, so a page that keeps its own session open while a helper opens
another is such a request there.

:class:`PoolGuard` listens to every pool's checkouts and returns (SQLAlchemy pool events on
the ``Pool`` class) and records each time an asyncio task checks out a connection from a
pool it already holds one of. The suite's autouse fixture fails the test that did it, naming
the two places. Work in other tasks (the session touch, the audit writer) may wait for a
connection: it holds none while it waits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import greenlet
from sqlalchemy import event
from sqlalchemy.pool import Pool


def _app_frames(limit: int = 6) -> str:
    """Where the awaiting code is: the frames of ``src/`` (or ``tests/``) above the greenlet
    SQLAlchemy runs its synchronous pool code in, innermost first."""
    current = greenlet.getcurrent()
    frame = current.parent.gr_frame if current.parent is not None else None
    lines: list[str] = []
    while frame is not None and len(lines) < limit:
        name = frame.f_code.co_filename
        if "site-packages" not in name and ("/src/" in name or "/tests/" in name):
            where = (
                name.rsplit("/src/", 1)[-1]
                if "/src/" in name
                else "tests/" + name.rsplit("/tests/", 1)[-1]
            )
            lines.append(f"    {where}:{frame.f_lineno} in {frame.f_code.co_name}")
        frame = frame.f_back
    return "\n".join(lines) or "    (no frame of the app's or the tests' code)"


@dataclass
class PoolGuard:
    """Which task holds which pooled connection, and every second checkout from one pool."""

    held: dict[Any, tuple[asyncio.Task[Any], Any, str]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def install(self) -> None:
        """Start listening to every pool's checkouts and returns."""
        event.listen(Pool, "checkout", self._checkout)
        for name in ("checkin", "invalidate", "detach"):
            event.listen(Pool, name, self._released)

    def remove(self) -> None:
        """Stop listening."""
        event.remove(Pool, "checkout", self._checkout)
        for name in ("checkin", "invalidate", "detach"):
            event.remove(Pool, name, self._released)

    def _checkout(self, _dbapi_connection: Any, record: Any, proxy: Any) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: synchronous use, nothing to deadlock
            return
        if task is None:
            return
        pool = proxy._pool  # the pool this connection comes from (SQLAlchemy's fairy)
        where = _app_frames()
        for other, (holder, other_pool, held_at) in self.held.items():
            if holder is task and other_pool is pool and other is not record:
                self.violations.append(
                    f"task {task.get_name()} asked {pool.status()} for a second connection\n"
                    f"  while holding one it took at:\n{held_at}\n  asking at:\n{where}"
                )
        self.held[record] = (task, pool, where)

    def _released(self, _dbapi_connection: Any, record: Any, *_: Any) -> None:
        self.held.pop(record, None)
