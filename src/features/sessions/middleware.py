"""Resolve the session cookie to a user on every request (``request.user`` / ``request.auth``).

Anonymous requests get ``scope["user"] = None`` and never touch the database beyond nothing:
without a cookie there is no query at all (DESIGN.md §3). A cookie that names no live session
is deleted from the browser; it is never adopted (S10). A pending two-factor login (S12) is
not a signed-in user: it only sets ``scope["pending_login"]`` for the challenge routes.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from features.sessions.service import PendingLogin, resolve, session_cookie_name
from shared.web.cookies import expired_cookie, read_cookie


class SessionMiddleware:
    """ASGI middleware; install before the CSRF middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope["litestar_app"].state
        name = session_cookie_name(state.settings)
        token = read_cookie(scope, name)
        # An EventSource (re)connect is not user activity: it must not keep an idle session alive.
        touch = (b"accept", b"text/event-stream") not in scope.get("headers", ())
        resolved = await resolve(state.db, state.settings, token, touch=touch) if token else None
        pending = resolved if isinstance(resolved, PendingLogin) else None
        signed_in = resolved if isinstance(resolved, tuple) else None
        scope["user"], scope["auth"] = signed_in if signed_in else (None, None)
        scope["pending_login"] = pending  # type: ignore[typeddict-unknown-key]  # S12
        if token is None or resolved is not None:
            await self.app(scope, receive, send)
            return

        dead = expired_cookie(name, https=state.settings.https).to_header(header="")

        async def send_clearing_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                if not any(v.startswith(f"{name}=") for v in headers.getall("set-cookie", [])):
                    headers.add("set-cookie", dead)
            await send(message)

        await self.app(scope, receive, send_clearing_cookie)
