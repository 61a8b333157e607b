"""One log line per HTTP request (README "Operations").

Fields: ``request_id`` (the one error pages show), ``method``, ``path``, ``status`` (499 when
the client went away before the answer), ``duration_ms`` (float, from the first byte received
to the last byte sent), ``user_id`` (``None`` for guests), and ``client_disconnected: true``
when the client went away before the response was complete. The query string, headers and
cookies are never logged, and path segments that look like secrets (long random strings that are not UUIDs, e.g. a reset token in
``/reset/<token>``) are replaced by ``[redacted]`` (OWASP Logging Cheat Sheet, "Data to
exclude"; ASVS 7.1.1).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.web.context import request_id

logger = logging.getLogger("slicestar.access")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SECRET_LIKE = re.compile(r"^[A-Za-z0-9_\-.~%=]{24,}$")


def safe_path(path: str) -> str:
    """``path`` with token-like segments (≥ 24 URL-safe characters, not a UUID) redacted."""
    return "/".join(
        "[redacted]" if _SECRET_LIKE.match(part) and not _UUID.match(part) else part
        for part in path.split("/")
    )


CLIENT_CLOSED = 499  # nginx's code for "client closed the request before the answer"


class AccessLog:
    """ASGI wrapper around the whole application (outside routing, so 404s are logged too).

    A client that goes away before the response starts (an aborted upload, a closed tab) is
    logged with status 499 and ``client_disconnected: true`` instead of whatever the app then
    answers into the closed connection (a body read that ends early raises, which would read
    as a 500). A disconnect after the response started keeps the status sent and only sets
    ``client_disconnected`` (an event stream closed by its tab ends this way).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before starting a response
        response_started = finished = disconnected = closed_before_answer = False

        async def receive_and_watch() -> Message:
            nonlocal disconnected, closed_before_answer
            message = await receive()
            if message["type"] == "http.disconnect" and not finished:
                disconnected = True
                closed_before_answer = closed_before_answer or not response_started
            return message

        async def send_and_record(message: Message) -> None:
            nonlocal status, response_started, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive_and_watch, send_and_record)
        finally:
            user: Any = scope.get("user")
            logged = CLIENT_CLOSED if closed_before_answer else status
            path = safe_path(scope["path"])
            fields = {
                "request_id": request_id(scope),
                "method": scope["method"],
                "path": path,
                "status": logged,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": str(user.id) if getattr(user, "id", None) else None,
            }
            if disconnected:
                fields["client_disconnected"] = True
            logger.info(
                "%s %s %s%s",
                scope["method"],
                path,
                logged,
                " client disconnected" if disconnected else "",
                extra=fields,
            )
