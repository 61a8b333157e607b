"""Error pages with their real status codes (SECURITY.md S48, DESIGN.md §5).

HTML for browser paths, JSON under ``/api/``. A 401 on a page sends the person to the sign-in
page with ``next=``; an unexpected exception is logged with the request id and answered with a
500 page that shows only that id. Database failures (locked, read-only, disk full) answer 503.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.response import Redirect, Template
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.events import emit_security_event
from shared.web.context import request_id
from shared.web.csrf import CSRFError
from shared.web.render import shared_context

logger = logging.getLogger("slicestar.errors")

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Service unavailable",
}
MESSAGES = {
    404: "There is nothing at this address, or it is not yours to see.",
    405: "This address does not accept that kind of request.",
    500: "An unexpected error happened. It has been logged.",
    503: "The service cannot save or read data right now. Please try again in a moment.",
}


def _render(
    request: Request, status: int, message: str | None, headers: dict[str, str] | None = None
) -> Response:
    rid = request_id(request.scope)
    title = TITLES.get(status, "Error")
    text = message or MESSAGES.get(status, title)
    if request.url.path.startswith("/api/"):
        return Response(
            {"error": {"status": status, "title": title, "message": text, "request_id": rid}},
            status_code=status,
            media_type=MediaType.JSON,
            headers=headers,
        )
    context = shared_context(request)
    context.update(status=status, title=title, message=text, request_id=rid)
    return Template(
        template_name="errors/error.html", context=context, status_code=status, headers=headers
    )


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    """Render any ``HTTPException``; a 401 on an HTML path becomes a redirect to sign in."""
    if isinstance(exc, NotAuthorizedException) and not request.url.path.startswith("/api/"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(path=f"/login?next={quote(target, safe='/')}", status_code=303)
    status = exc.status_code
    if status == 403:
        _emit_refusal(request, exc)
    # Litestar's default detail is the status phrase; ours (raised with a text) is shown as is.
    message = None if exc.detail == HTTPStatus(status).phrase or status >= 500 else exc.detail
    return _render(request, status, message, headers=exc.headers)


def _emit_refusal(request: Request, exc: HTTPException) -> None:
    """Record a refused request in the audit trail (S52): ``malicious_csrf`` for a CSRF or
    origin failure, ``authz_fail`` for any other 403. Never lets auditing break the answer."""
    user = request.scope.get("user")
    name = "malicious_csrf" if isinstance(exc, CSRFError) else "authz_fail"
    try:
        emit_security_event(
            request,
            name,
            user_id=user.id if user else None,
            outcome="failure",
            method=request.method,
            path=request.url.path[:200],
        )
    except Exception:  # no listener registered, or the emitter is not running
        logger.warning("security event %s not emitted", name, exc_info=True)


def database_error_handler(request: Request, exc: Exception) -> Response:
    """A database that is locked past the busy timeout, read-only or full answers 503 (R10–R12)."""
    logger.error(
        "database unavailable [request_id=%s]: %s",
        request_id(request.scope),
        exc.__class__.__name__,
    )
    return _render(request, 503, None, headers={"Retry-After": "5"})


def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Log the exception with the request id; answer 500 without any detail (S48)."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return database_error_handler(request, exc)
    if isinstance(exc, DBAPIError) and "readonly" in str(exc).lower():
        return database_error_handler(request, exc)
    logger.exception("unhandled error [request_id=%s]", request_id(request.scope))
    return _render(request, 500, None)


exception_handlers = {
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}


class RedirectRequired(HTTPException):
    """Raised (by a guard) to send the browser elsewhere first; answered with 303 to ``location``."""

    status_code = 303

    def __init__(self, location: str) -> None:
        super().__init__(detail="Redirect")
        self.location = location


def redirect_required_handler(request: Request, exc: RedirectRequired) -> Response:
    """Answer a :class:`RedirectRequired` with 303 See Other."""
    return Redirect(path=exc.location, status_code=303)


exception_handlers[RedirectRequired] = redirect_required_handler
