"""Log formatting: one JSON object per line in production, readable lines in development.

``LOG_FORMAT=auto`` (the default) picks JSON when ``APP_ENV=production``. Request lines come
from :mod:`shared.web.access_log`; their fields (``request_id``, ``method``, ``path``,
``status``, ``duration_ms``, ``user_id``) are attributes of the log record, so the JSON
formatter emits them as keys and the text formatter appends them.

The server in front of the app may keep its own access log (uvicorn, under ``make run``, logs
``"GET /reset-password/<token> HTTP/1.1" 200`` on ``uvicorn.access``): :func:`redact_server_access_log`
makes that log redact secret path segments and drop the query, as the app's own access log does
(SECURITY.md S37: tokens never appear in logs).
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

from litestar.logging import LoggingConfig

from shared.web.access_log import safe_path

# Attributes every LogRecord has; anything else on a record is an ``extra`` field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


# One encoder for every line: ``json.dumps`` with any option builds a new encoder per call.
_JSON_LINE = json.JSONEncoder(default=str, ensure_ascii=False)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO-8601 UTC, ms), ``level``, ``logger``, ``message``
    plus the record's extra fields. Never multi-line: tracebacks are escaped inside ``message``.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        entry.update(_extras(record))
        return _JSON_LINE.encode(entry)


_IN_MESSAGE = frozenset({"method", "path", "status"})  # access lines already say these


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: message key=value …`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in _extras(record).items() if k not in _IN_MESSAGE}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


class BatchedStreamHandler(logging.Handler):
    """Formats each record where it is logged and writes the lines from a background thread.

    Every ``interval`` seconds (default 0.05) the writer thread takes every line waiting and
    writes them to ``stream`` (default ``sys.stderr``) in one ``write`` and one ``flush``. So a
    request that logs never waits for the stream (a slow pipe to a log collector), as with the
    standard ``QueueHandler``, but the thread wakes 20 times a second instead of once per
    record. Waking a thread per record and handing it the GIL cost more than formatting the
    line: on 2 vCPUs (``bench/``, set-up B, c=64) the sign-in page took 0.40-0.42 ms of CPU per
    request with the queue and 0.36-0.39 ms with this handler; task create went from 756-861
    to 917-948 requests/s.

    Lines are formatted at once, in the thread that logs (as ``QueueHandler.prepare`` does), so
    a record's arguments and traceback are read while they still hold. Waiting lines are not
    bounded, like the queue this replaces. :meth:`close` (at ``dictConfig``'s reconfiguration
    and at exit) writes what is left and stops the thread. A server's worker process may end
    with ``os._exit``, which skips exit handlers, so the app calls :func:`flush_logs` when it
    shuts down; a killed process loses the lines of its last ``interval``.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 0.05) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._lines: collections.deque[str] = collections.deque()
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and queue its line (``deque.append`` is thread-safe)."""
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write every waiting line now, in one write."""
        with self._write_lock:  # the writer thread and close() may flush at once
            lines: list[str] = []
            take = self._lines.popleft
            while self._lines:
                lines.append(take())
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stream: the lines are lost
                pass

    def close(self) -> None:
        """Stop the writer thread after it wrote every line queued so far."""
        self._stopping.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self.flush()
        atexit.unregister(self.close)
        super().close()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.flush()


def flush_logs() -> None:
    """Write every line the root logger's handlers still hold (at the app's shutdown)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def uses_json(log_format: str, app_env: str) -> bool:
    """True when logs should be JSON lines (``LOG_FORMAT=json``, or ``auto`` in production)."""
    return log_format == "json" or (log_format == "auto" and app_env == "production")


def skip_unused_record_fields() -> None:
    """Stop every log record of this process collecting what JSON lines never show: the
    calling file, line and function (a walk up the stack per record), the thread and the
    process. These are the switches of the Logging HOWTO's "Optimization" section (Python
    docs); the records keep those attributes, set to ``None`` or placeholders. The app calls
    this when it logs JSON (production), where each access line cost about 30 µs of CPU.
    """
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(log_format: str, app_env: str, level: str = "INFO") -> LoggingConfig:
    """Litestar's logging config with our formatter; every logger writes to stderr through
    :class:`BatchedStreamHandler` (in place of Litestar's per-record queue listener)."""
    formatter = JSONFormatter if uses_json(log_format, app_env) else TextFormatter
    return LoggingConfig(
        root={"level": level.upper(), "handlers": ["queue_listener"]},
        formatters={"standard": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        handlers={
            "queue_listener": {
                "class": f"{BatchedStreamHandler.__module__}.{BatchedStreamHandler.__qualname__}",
                "level": "DEBUG",
                "formatter": "standard",
            }
        },
        log_exceptions="never",
    )


SERVER_ACCESS_LOGGERS = ("uvicorn.access",)


def redact_request_target(target: str) -> str:
    """A request target (``/path?query``) fit for a log: secret-like path segments become
    ``[redacted]`` (:func:`shared.web.access_log.safe_path`) and a query becomes ``?[redacted]``
    (it may carry a token too)."""
    path, question, _query = target.partition("?")
    return safe_path(path) + ("?[redacted]" if question else "")


class ServerAccessLogRedaction(logging.Filter):
    """Rewrites uvicorn's access records (arguments: client, method, target, HTTP version,
    status) so that the target is redacted before any handler formats it. Records of another
    shape pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_request_target(args[2]), *args[3:])
        return True


def redact_server_access_log() -> None:
    """Install :class:`ServerAccessLogRedaction` on the server's access logger (once per
    process; a second call changes nothing)."""
    for name in SERVER_ACCESS_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, ServerAccessLogRedaction) for f in target.filters):
            target.addFilter(ServerAccessLogRedaction())
