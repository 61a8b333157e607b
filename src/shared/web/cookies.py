"""Cookie names and attributes (SECURITY.md S13): HttpOnly, SameSite=Lax, Path=/, no Domain;
Secure and the ``__Host-`` prefix when the app is served over https."""

from __future__ import annotations

import re

from litestar.datastructures import Cookie

_COOKIE_SAFE = re.compile(r"[A-Za-z0-9_\-]+")


def cookie_name(base: str, https: bool) -> str:
    """Return ``__Host-<base>`` over https, else ``base``."""
    return f"__Host-{base}" if https else base


def make_cookie(name: str, value: str, *, https: bool, max_age: int | None = None) -> Cookie:
    """Build a cookie with the S13 attributes. ``max_age`` in seconds; ``None`` = browser session."""
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=https,
    )


def set_cookie_header(name: str, value: str, *, https: bool) -> str:
    """The ``Set-Cookie`` header value of a browser-session cookie with the S13 attributes.

    The same text :func:`make_cookie` gives through ``Cookie.to_header``, written directly for
    middleware that sets a cookie on many responses (the guest CSRF cookie). ``value`` must
    already be cookie-safe (RFC 6265 §4.1.1 ``cookie-octet``s, e.g. base64url); ``ValueError``
    otherwise.
    """
    if not value or not _COOKIE_SAFE.fullmatch(value):
        raise ValueError("cookie value must be non-empty base64url text")
    return f"{name}={value}; HttpOnly; Path=/; SameSite=lax" + ("; Secure" if https else "")


def expired_cookie(name: str, *, https: bool) -> Cookie:
    """A cookie that tells the browser to delete ``name`` now."""
    return make_cookie(name, "", https=https, max_age=0)


def read_cookie(scope: object, name: str) -> str | None:
    """Return the value of cookie ``name`` from an ASGI scope's headers, or ``None``."""
    for key, value in scope.get("headers", ()):  # type: ignore[attr-defined]
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None
