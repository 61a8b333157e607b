"""The ceiling: a bare ASGI app that answers every request with the same bytes.

It returns the body of a real dashboard response (captured by the harness into the file named
by ``CEILING_BODY_FILE``) with a ``text/html`` content type, under the same server and worker
count as the app. Nothing a Python web app does per request can be cheaper, so the app's
throughput as a share of this one is the part of the server's capacity it keeps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ASGIApp = Any


def create_app() -> ASGIApp:
    """Build the ASGI callable (``granian --factory bench.peers.ceiling:create_app``)."""
    body = Path(os.environ["CEILING_BODY_FILE"]).read_bytes()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    message = {"type": "http.response.body", "body": body}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        await send(start)
        await send(message)

    return app
