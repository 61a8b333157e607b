"""Per-request values that templates and headers share: the CSP nonce and the request id.

Both are created lazily and kept in the ASGI scope, so the template that renders a page and
the ``before_send`` hook that writes its headers agree on them.
"""

from __future__ import annotations

import secrets
from typing import Any

_NONCE = "slicestar.csp_nonce"
_REQUEST_ID = "slicestar.request_id"


def csp_nonce(scope: Any) -> str:
    """Return this request's CSP nonce (128 random bits, base64url)."""
    value = scope.get(_NONCE)
    if value is None:
        value = scope[_NONCE] = secrets.token_urlsafe(16)
    return value


def request_id(scope: Any) -> str:
    """Return this request's id: the incoming ``X-Request-Id`` if sane, else a new random one."""
    value = scope.get(_REQUEST_ID)
    if value is None:
        incoming = ""
        for name, raw in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = raw.decode("latin-1")
                break
        ok = 8 <= len(incoming) <= 64 and all(c.isalnum() or c in "-_" for c in incoming)
        value = scope[_REQUEST_ID] = incoming if ok else secrets.token_hex(8)
    return value
