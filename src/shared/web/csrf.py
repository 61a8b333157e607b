"""CSRF protection for every unsafe request (SECURITY.md S21, S22, S23).

The token a form carries is ``HMAC(SECRET_KEY, secret)``, where ``secret`` is

- for a signed-in browser: the random CSRF secret stored with its server-side session, so the
  token is bound to the session and renewed at login (S22);
- for a guest: a random secret in the HttpOnly ``csrf`` cookie (no database row, DESIGN.md §3).

An unsafe request (POST, PUT, PATCH, DELETE) must send the token in the ``_csrf_token`` form
field or the ``X-CSRF-Token`` header, and must not come from another origin
(``Origin`` / ``Sec-Fetch-Site``, S23). Anything else answers 403 and runs no handler.
"""

from __future__ import annotations

import secrets

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import RequestEncodingType
from litestar.exceptions import PermissionDeniedException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.security.tokens import equal, keyed_digest
from shared.web.cookies import cookie_name, read_cookie, set_cookie_header

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_FIELD = "_csrf_token"
HEADER = "x-csrf-token"
_TOKEN_KEY = "slicestar.csrf_token"
_ISSUED_KEY = "slicestar.csrf_issued_guest_secret"


class CSRFError(PermissionDeniedException):
    """The request's CSRF token or origin was wrong (403)."""


def csrf_token(scope: Scope) -> str:
    """Return the token to embed in this request's forms (set by :class:`CSRFMiddleware`)."""
    return scope.get(_TOKEN_KEY, "")  # type: ignore[return-value]


def issue_guest_secret(secret_key: str) -> tuple[str, str]:
    """A new guest CSRF secret (256 random bits, base64url, for the ``csrf`` cookie) and the
    form token for it, ``HMAC(secret_key, secret)`` as hex: ``(secret, token)``."""
    secret = secrets.token_urlsafe(32)
    return secret, keyed_digest(secret_key, "csrf", secret)


def issued_guest_secret(scope: Scope) -> str | None:
    """The guest secret :class:`CSRFMiddleware` issued to this request (it sets the cookie on
    the HTML answer), or ``None`` when the request brought one or belongs to a session."""
    return scope.get(_ISSUED_KEY)  # type: ignore[return-value]


def _origin_ok(scope: Scope, headers: dict[str, str], app_url: str) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = headers.get("origin")
    if origin is None:  # same-origin form posts from older browsers carry no Origin
        return True
    if origin == "null":
        # A form on a page with ``Referrer-Policy: no-referrer`` (the mailed-link pages, S37)
        # posts ``Origin: null``; it counts only when the browser attests the same origin.
        return headers.get("sec-fetch-site") == "same-origin"
    own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
    return origin in (own, app_url.rstrip("/"))


class CSRFMiddleware:
    """ASGI middleware; install after the session middleware so ``scope["auth"]`` is known."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        litestar_app = scope["litestar_app"]
        settings = litestar_app.state.settings
        name = cookie_name("csrf", settings.https)
        auth = scope.get("auth")
        new_guest_secret: str | None = None
        if auth is not None:
            expected = keyed_digest(settings.secret_key, "csrf", auth.csrf_secret)
        else:
            secret = read_cookie(scope, name)
            if secret and len(secret) >= 32:
                expected = keyed_digest(settings.secret_key, "csrf", secret)
            else:
                new_guest_secret, expected = issue_guest_secret(settings.secret_key)
                scope[_ISSUED_KEY] = new_guest_secret  # type: ignore[literal-required]
        scope[_TOKEN_KEY] = expected  # type: ignore[literal-required]

        if scope["method"] not in SAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if not _origin_ok(scope, headers, settings.app_url):
                raise CSRFError("Cross-origin request refused")
            supplied = headers.get(HEADER)
            if supplied is None:
                request = litestar_app.request_class(scope=scope, receive=receive)
                content_type, _ = request.content_type
                if content_type in (
                    RequestEncodingType.URL_ENCODED,
                    RequestEncodingType.MULTI_PART,
                ):
                    form = await request.form()
                    value = form.get(FORM_FIELD)
                    supplied = value if isinstance(value, str) else None
            if new_guest_secret is not None or not supplied or not equal(supplied, expected):
                raise CSRFError(
                    "The form has expired or was not sent from this site. Please try again."
                )

        if new_guest_secret is None:
            await self.app(scope, receive, send)
            return

        cookie = set_cookie_header(name, new_guest_secret, https=settings.https)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.add("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)
