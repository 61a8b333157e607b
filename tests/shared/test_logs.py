"""Request log lines: JSON in production, text in development, no secrets (README "Operations")."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from shared.logs import (
    BatchedStreamHandler,
    JSONFormatter,
    ServerAccessLogRedaction,
    TextFormatter,
    logging_config,
    redact_request_target,
    skip_unused_record_fields,
    uses_json,
)
from shared.web.access_log import safe_path
from tests.support import register


def test_token_like_path_segments_are_redacted_but_ids_are_kept() -> None:
    token = "Zq3v" * 11
    uuid = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    assert safe_path(f"/reset/{token}") == "/reset/[redacted]"
    assert safe_path(f"/tasks/{uuid}/edit") == f"/tasks/{uuid}/edit"
    assert safe_path("/settings/two-factor/recovery-codes") == "/settings/two-factor/recovery-codes"


def test_production_logs_json_and_development_logs_text() -> None:
    assert uses_json("auto", "production") and not uses_json("auto", "development")
    assert uses_json("json", "development") and not uses_json("text", "production")
    formatter = logging_config("auto", "production").formatters["standard"]["()"]
    assert formatter.endswith("JSONFormatter")
    assert (
        logging_config("auto", "development").formatters["standard"]["()"].endswith("TextFormatter")
    )


def _record() -> logging.LogRecord:
    record = logging.LogRecord(
        "slicestar.access", logging.INFO, "x", 1, "GET %s 200", ("/t",), None
    )
    record.__dict__.update(request_id="abc123", method="GET", path="/t", status=200, user_id=None)
    record.duration_ms = 1.5
    return record


def test_json_formatter_writes_one_object_per_line_with_the_request_fields() -> None:
    line = JSONFormatter().format(_record())
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "GET /t 200"
    assert entry["request_id"] == "abc123" and entry["duration_ms"] == 1.5
    assert entry["status"] == 200 and entry["user_id"] is None


def test_json_lines_keep_every_field_when_records_skip_caller_thread_and_process() -> None:
    switches = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")
    saved = {name: getattr(logging, name) for name in switches}
    stream = _Stream()
    handler = BatchedStreamHandler(stream, interval=60)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("slicestar.test.skip")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        skip_unused_record_fields()
        records: list[logging.LogRecord] = []
        logger.addFilter(lambda record: records.append(record) or True)
        logger.warning("GET %s %s", "/t", 200, extra={"request_id": "r-1", "status": 200})
        handler.flush()
    finally:
        for name, value in saved.items():
            setattr(logging, name, value)
        logger.removeHandler(handler)
        handler.close()
    (record,) = records
    assert record.funcName == "(unknown function)" and record.lineno == 0  # no stack walk
    assert record.thread is None and record.process is None
    entry = json.loads(stream.writes[0])
    assert entry["message"] == "GET /t 200" and entry["level"] == "WARNING"
    assert entry["request_id"] == "r-1" and entry["status"] == 200
    assert entry["logger"] == "slicestar.test.skip" and entry["time"].endswith("+00:00")


def test_text_formatter_appends_the_fields_the_message_lacks() -> None:
    line = TextFormatter().format(_record())
    assert "GET /t 200" in line and "request_id=abc123" in line and "duration_ms=1.5" in line
    assert "path=" not in line


async def test_each_request_is_logged_once_with_the_signed_in_user(client, caplog) -> None:
    await register(client, "logged@example.com")
    caplog.set_level(logging.INFO, logger="slicestar.access")
    caplog.clear()
    await client.get("/tasks?q=private", headers={"x-request-id": "req-unit-0001"})
    await client.get("/missing-page")
    lines = [r for r in caplog.records if r.name == "slicestar.access"]
    assert [(r.path, r.status) for r in lines] == [("/tasks", 200), ("/missing-page", 404)]
    assert lines[0].request_id == "req-unit-0001"
    assert lines[0].user_id
    assert lines[1].user_id is None  # no route matched, so no session was looked up
    assert not any("private" in str(vars(r)) for r in lines)  # no query string


def test_s37_the_servers_access_records_are_redacted_before_formatting():
    token = "A" * 43
    assert redact_request_target(f"/reset-password/{token}") == "/reset-password/[redacted]"
    assert redact_request_target(f"/login?next=/x&token={token}") == "/login?[redacted]"
    assert redact_request_target("/tasks/3") == "/tasks/3"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/verify-email/{token}?t={token}", "1.1", 200),
        None,
    )
    assert ServerAccessLogRedaction().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "GET /verify-email/[redacted]?[redacted] HTTP/1.1" 200'
    )


class _Stream:
    """A text stream that records each ``write`` and can be held shut (a full pipe)."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.open = threading.Event()
        self.open.set()

    def write(self, text: str) -> int:
        self.open.wait(5)
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def _line(handler: BatchedStreamHandler, message: str, level: int = logging.INFO) -> None:
    handler.handle(logging.LogRecord("t", level, "x", 1, message, (), None))


def test_batched_handler_writes_the_lines_waiting_in_one_write_in_order() -> None:
    stream = _Stream()
    handler = BatchedStreamHandler(stream, interval=60)  # the writer does not wake in this test
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        for n in range(3):
            _line(handler, f"line {n}")
        assert stream.writes == []  # formatted and queued, not yet written
        handler.flush()
        assert stream.writes == ["line 0\nline 1\nline 2\n"]
        handler.flush()
        assert len(stream.writes) == 1  # nothing waiting, nothing written
    finally:
        handler.close()


def test_batched_handler_writes_from_its_thread_and_close_writes_the_rest() -> None:
    stream = _Stream()
    handler = BatchedStreamHandler(stream, interval=0.01)
    handler.setFormatter(logging.Formatter("%(message)s"))
    _line(handler, "first")
    deadline = time.monotonic() + 5
    while not stream.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.writes == ["first\n"]
    stream.open.clear()  # the stream blocks (a full pipe): logging must not wait for it
    _line(handler, "second")
    time.sleep(0.05)  # the writer is now stuck in write()
    started = time.monotonic()
    _line(handler, "third")
    assert time.monotonic() - started < 1
    stream.open.set()
    handler.close()
    assert "".join(stream.writes) == "first\nsecond\nthird\n"
    assert not handler._writer.is_alive()


def test_batched_handler_formats_a_traceback_when_the_record_is_logged() -> None:
    stream = _Stream()
    handler = BatchedStreamHandler(stream, interval=60)
    handler.setFormatter(JSONFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, "x", 1, "failed", (), sys.exc_info())
    handler.handle(record)
    handler.close()
    entry = json.loads(stream.writes[0])
    assert (
        entry["message"].startswith("failed\nTraceback") and "ValueError: boom" in entry["message"]
    )


def test_the_app_logs_through_the_batched_handler() -> None:
    config = logging_config("auto", "production")
    handler = config.handlers["queue_listener"]
    assert handler["class"] == "shared.logs.BatchedStreamHandler"
    assert config.root["handlers"] == ["queue_listener"]
    assert config.loggers["litestar"]["handlers"] == ["queue_listener"]
