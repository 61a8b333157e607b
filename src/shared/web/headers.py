"""Security headers on every response (SECURITY.md S47, S16), written in ``before_send``."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from shared.web.context import csp_nonce, request_id


def content_security_policy(nonce: str) -> str:
    """The CSP: same-origin resources, nonce-only scripts and styles, no framing, no plugins."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data: blob:; "
        "connect-src 'self'; "
        "font-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


async def security_headers(message: Message, scope: Scope) -> None:
    """Add the headers to an ``http.response.start`` message; leave ones a handler set alone.

    Signed-in responses are never stored by caches (``Cache-Control: no-store``, S16).
    """
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    settings = scope["litestar_app"].state.settings

    def default(name: str, value: str) -> None:
        if name not in headers:
            headers[name] = value

    default("content-security-policy", content_security_policy(csp_nonce(scope)))
    default("x-content-type-options", "nosniff")
    default("x-frame-options", "DENY")
    default("referrer-policy", "strict-origin-when-cross-origin")
    default("cross-origin-opener-policy", "same-origin")
    default("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()")
    headers["x-request-id"] = request_id(scope)
    if settings.https:
        default("strict-transport-security", "max-age=31536000; includeSubDomains")
    if scope.get("user") is not None:
        default("cache-control", "no-store")
