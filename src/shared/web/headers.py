"""Security headers on every response (SECURITY.md S47, S16), written in ``before_send``."""

from __future__ import annotations

from litestar.types import Message, Scope

from shared.web.context import csp_nonce, request_id

_CSP_TEMPLATE = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_CSP_PARTS = _CSP_TEMPLATE.split("{nonce}")

# Added unless the response already has them (name, value), as ASGI byte strings.
_FIXED = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_NO_STORE = (b"cache-control", b"no-store")


def content_security_policy(nonce: str) -> str:
    """The CSP: same-origin resources, nonce-only scripts and styles, no framing, no plugins."""
    return nonce.join(_CSP_PARTS)


async def security_headers(message: Message, scope: Scope) -> None:
    """Add the headers to an ``http.response.start`` message; leave ones a handler set alone.

    Signed-in responses are never stored by caches (``Cache-Control: no-store``, S16).
    ``X-Request-Id`` is always this request's id (an existing one is replaced). The header
    list is edited in place with precomputed byte strings (this runs on every response).
    """
    if message["type"] != "http.response.start":
        return
    headers = message.setdefault("headers", [])
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers)  # type: ignore[typeddict-item]
    present = {name.lower() for name, _ in headers}
    if b"content-security-policy" not in present:
        csp = content_security_policy(csp_nonce(scope)).encode("latin-1")
        headers.append((b"content-security-policy", csp))
    headers.extend(pair for pair in _FIXED if pair[0] not in present)
    if b"x-request-id" in present:
        headers[:] = [pair for pair in headers if pair[0].lower() != b"x-request-id"]
    headers.append((b"x-request-id", request_id(scope).encode("latin-1")))
    if scope["litestar_app"].state.settings.https and _HSTS[0] not in present:
        headers.append(_HSTS)
    if scope.get("user") is not None and _NO_STORE[0] not in present:
        headers.append(_NO_STORE)
