"""Route guards (SECURITY.md S39): every route is signed-in only unless marked public.

The app installs :func:`requires_user` on every route. A handler opts out with
``opt={"public": True}``; a test walks the route table to check the public list.

An account whose email address is not verified yet may sign in, but every signed-in route
sends it to :data:`VERIFY_EMAIL_PATH` until it verifies, except routes marked
``opt={"unverified": True}`` (that page, its resend button, sign-out). The verified flag comes
with the session lookup (``CurrentUser.verified``), so the check costs no query.

Guards are ``async def``: Litestar runs a synchronous guard in a worker thread
(``sync_to_thread``), a thread hop on every request for a check that never blocks.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from shared.web.errors import RedirectRequired

VERIFY_EMAIL_PATH = "/verify-email"


async def requires_user(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Raise ``NotAuthorizedException`` (→ sign-in page) unless signed in or the route is public;
    send an unverified account to :data:`VERIFY_EMAIL_PATH` (303) unless the route allows it."""
    if handler.opt.get("public"):
        return
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException("Please sign in to continue.")
    if not getattr(user, "verified", False) and not handler.opt.get("unverified"):
        raise RedirectRequired(VERIFY_EMAIL_PATH)


async def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Raise ``PermissionDeniedException`` (403) unless the signed-in user's role is ``admin``."""
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException("Please sign in to continue.")
    if getattr(user, "role", None) != "admin":
        raise PermissionDeniedException("This area is for administrators.")
