"""Request log lines: JSON in production, text in development, no secrets (README "Operations")."""

from __future__ import annotations

import json
import logging

from shared.logs import (
    JSONFormatter,
    ServerAccessLogRedaction,
    TextFormatter,
    logging_config,
    redact_request_target,
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
