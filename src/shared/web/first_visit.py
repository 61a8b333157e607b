"""First visits to public pages answered from a snapshot, with fresh secrets in every answer.

A browser's first visit to the sign-in page (no cookie, no query string) gets the same page as
every other first visitor except for three per-response secrets: the CSP nonce (SECURITY.md
S47), the guest CSRF secret in the ``csrf`` cookie and the form token derived from it (S21).
That page is what anonymous visitors, bots and uptime probes hit most. Rendered through routing,
middleware, the handler and Jinja, it cost 0.37-0.40 ms of CPU per request, about eight times the
server's own work; replayed, 0.10-0.11 ms (``bench/``, set-up B, c=64, 2 vCPUs: 4,456-4,880 ->
15,025-16,313 requests/s).

:class:`FirstVisitPages` wraps the application, inside the access log. For each page a feature
lists in ``first_visit_pages``:

1. The first two first visits run through the application as always. Each answer is cut at
   that request's own nonce, CSRF secret and token into a snapshot: fixed bytes and holes.
2. When both snapshots are equal (and each was a whole ``200`` HTML answer), later first visits
   get the snapshot with a new nonce, secret and token, made as the CSP and CSRF code make
   them. Litestar's ``before_send`` hook still adds the security headers to every answer, with
   this answer's nonce. When the snapshots differ, the page holds something else that varies
   from visit to visit (a clock, a secret not known here), so it is always rendered and a
   warning names it. Two captures cannot reveal what changes more slowly (a figure from the
   database): a feature lists only pages whose first visit depends on the settings alone.

Any other request for the page (with a cookie or a query string, ``HEAD``, another method)
runs through the application. Litestar's response cache cannot do this: it would give every
visitor the same nonce and the same CSRF cookie. Development mode, where templates reload on
change, does not use snapshots (``create_app``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.web.context import csp_nonce
from shared.web.csrf import csrf_token, issue_guest_secret, issued_guest_secret

logger = logging.getLogger("slicestar.first_visit")

# The holes of a snapshot: indexes into the per-answer values (nonce, guest secret, token).
NONCE, SECRET, TOKEN = 0, 1, 2
Parts = tuple[bytes | int, ...]  # fixed bytes and holes, in order
_CONTENT_LENGTH = b"content-length"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One page's answer to a first visit, cut at its secrets.

    ``headers`` are ``(name, parts)`` pairs in the answer's order; ``parts`` is ``None`` for
    ``content-length``, which is the length of the filled ``body``.
    """

    status: int
    headers: tuple[tuple[bytes, Parts | None], ...]
    body: Parts


def cut(data: bytes, values: tuple[bytes, ...]) -> Parts:
    """``data`` split at every occurrence of ``values`` (non-empty byte strings): the fixed
    bytes between them and, where one stood, its index in ``values``."""
    pattern = re.compile(b"|".join(re.escape(value) for value in values))
    index = {value: n for n, value in enumerate(values)}
    parts: list[bytes | int] = []
    start = 0
    for match in pattern.finditer(data):
        parts += [data[start : match.start()], index[match.group()]]
        start = match.end()
    parts.append(data[start:])
    return tuple(part for part in parts if part != b"")


def fill(parts: Parts, values: tuple[bytes, ...]) -> bytes:
    """The bytes of ``parts`` with each hole replaced by its value from ``values``."""
    return b"".join(values[part] if isinstance(part, int) else part for part in parts)


def snapshot_of(messages: list[Message], values: tuple[bytes, ...]) -> Snapshot | None:
    """The snapshot of an answer (its ASGI messages) cut at ``values``, or ``None`` when the
    answer cannot be replayed: not a ``200``, not HTML, or a body in more than one message."""
    if len(messages) != 2:
        return None
    start, body = messages
    if start["type"] != "http.response.start" or start["status"] != 200:
        return None
    if body["type"] != "http.response.body" or body.get("more_body", False):
        return None
    headers = tuple(
        (name, None if name == _CONTENT_LENGTH else cut(value, values))
        for name, value in start.get("headers", ())
    )
    content_type = next((v for n, v in start.get("headers", ()) if n == b"content-type"), b"")
    if not content_type.startswith(b"text/html"):
        return None
    return Snapshot(start["status"], headers, cut(body.get("body", b""), values))


class FirstVisitPages:
    """ASGI wrapper: first visits to ``paths`` answered from their snapshots (module docs)."""

    def __init__(self, app: ASGIApp, paths: Iterable[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self._first: dict[str, Snapshot] = {}  # the first capture of each page
        self._ready: dict[str, Snapshot] = {}  # confirmed by a second, equal capture
        self._varies: set[str] = set()  # captures differed: always rendered

    def is_first_visit(self, scope: Scope) -> bool:
        """A ``GET`` of one of the pages without a query string and without any cookie."""
        return (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] in self.paths
            and not scope["query_string"]
            and not any(name == b"cookie" for name, _ in scope["headers"])
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.is_first_visit(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        snapshot = self._ready.get(path)
        if snapshot is not None:
            await self._replay(snapshot, scope, send)
        elif path in self._varies:
            await self.app(scope, receive, send)
        else:
            await self._render_and_capture(path, scope, receive, send)

    async def _replay(self, snapshot: Snapshot, scope: Scope, send: Send) -> None:
        settings = scope["litestar_app"].state.settings
        secret, token = issue_guest_secret(settings.secret_key)
        values = (csp_nonce(scope).encode(), secret.encode(), token.encode())
        body = fill(snapshot.body, values)
        headers = [
            (name, str(len(body)).encode() if parts is None else fill(parts, values))
            for name, parts in snapshot.headers
        ]
        await send({"type": "http.response.start", "status": snapshot.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _render_and_capture(
        self, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        messages: list[Message] = []

        async def send_and_keep(message: Message) -> None:
            # A copy: the ``before_send`` hook then adds this answer's own headers in place.
            messages.append({**message, "headers": list(message.get("headers", ()))})
            await send(message)

        await self.app(scope, receive, send_and_keep)
        secret = issued_guest_secret(scope)
        if secret is None:  # the CSRF middleware did not run: nothing known to cut at
            return
        values = (csp_nonce(scope).encode(), secret.encode(), csrf_token(scope).encode())
        snapshot = snapshot_of(messages, values)
        if snapshot is None:
            return
        first = self._first.setdefault(path, snapshot)
        if first is snapshot:
            return
        if first == snapshot:
            self._ready[path] = snapshot
        else:
            self._varies.add(path)
            logger.warning("First visits to %s differ beyond their secrets; always rendered", path)
