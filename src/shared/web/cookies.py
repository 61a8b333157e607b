"""Cookie names and attributes (SECURITY.md S13): HttpOnly, SameSite=Lax, Path=/, no Domain;
Secure and the ``__Host-`` prefix when the app is served over https."""

from __future__ import annotations

from litestar.datastructures import Cookie


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
