"""Route guards (SECURITY.md S39): every route is signed-in only unless marked public.

The app installs :func:`requires_user` on every route. A handler opts out with
``opt={"public": True}``; a test walks the route table to check the public list.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler


def requires_user(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Raise ``NotAuthorizedException`` (→ sign-in page) unless signed in or the route is public."""
    if handler.opt.get("public"):
        return
    if connection.scope.get("user") is None:
        raise NotAuthorizedException("Please sign in to continue.")
