"""Route guards (SECURITY.md S39): every route is signed-in only unless marked public.

The app installs :func:`requires_user` on every route. A handler opts out with
``opt={"public": True}``; a test walks the route table to check the public list.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler


def requires_user(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Raise ``NotAuthorizedException`` (→ sign-in page) unless signed in or the route is public."""
    if handler.opt.get("public"):
        return
    if connection.scope.get("user") is None:
        raise NotAuthorizedException("Please sign in to continue.")


def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Raise ``PermissionDeniedException`` (403) unless the signed-in user's role is ``admin``."""
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException("Please sign in to continue.")
    if getattr(user, "role", None) != "admin":
        raise PermissionDeniedException("This area is for administrators.")
