"""Page rendering, flash messages and post/redirect/get helpers (DESIGN.md §5).

- :func:`page` renders a template with the shared context (user, CSRF field, flash messages,
  CSP nonce) and the right status (422 for invalid forms).
- :func:`redirect` answers 303 and can carry flash messages to the next page in a signed,
  HttpOnly cookie; the next :func:`page` shows them and deletes the cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from litestar import MediaType, Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template
from markupsafe import Markup

from shared.security.signing import Signer
from shared.web.context import csp_nonce
from shared.web.cookies import cookie_name, expired_cookie, make_cookie, read_cookie
from shared.web.csrf import FORM_FIELD, csrf_token

FlashCategory = Literal["success", "error", "info", "warning"]
_MAX_FLASH_CHARS = 500

ContextProvider = Callable[[Request], Awaitable[dict[str, Any]]]
CONTEXT_PROVIDERS = "template_context_providers"  # app.state key: list[ContextProvider]


def _flash_name(request: Request) -> str:
    return cookie_name("flash", request.app.state.settings.https)


def _flash_signer(request: Request) -> Signer:
    return Signer(request.app.state.settings.secret_key, "flash")


def read_flashes(request: Request) -> list[tuple[str, str]]:
    """Return the flash messages the previous response left, as ``(category, text)`` pairs."""
    raw = read_cookie(request.scope, _flash_name(request))
    if not raw:  # most pages: no flash cookie, nothing to verify
        return []
    value = _flash_signer(request).unsign(raw)
    if not isinstance(value, list):
        return []
    return [(str(c), str(m)) for c, m in value if isinstance(m, str)][:5]


def shared_context(request: Request) -> dict[str, Any]:
    """The values every page's layout needs."""
    token = csrf_token(request.scope)
    return {
        "request": request,
        "user": request.scope.get("user"),
        "app_name": request.app.state.settings.app_name,
        "csrf_token": token,
        "csrf_field": Markup('<input type="hidden" name="%s" value="%s">') % (FORM_FIELD, token),
        "csp_nonce": csp_nonce(request.scope),
        "flashes": read_flashes(request),
        "path": request.scope.get("root_path", "") + request.scope["path"],  # = request.url.path
    }


async def provide_template_context(response: Response) -> Response:
    """``after_request`` hook: add the values of every registered context provider to a page.

    Features register async providers (``request -> dict``) in ``app.state`` under
    :data:`CONTEXT_PROVIDERS` (e.g. the notification bell's count). They run only for
    responses that really render a template made by :func:`page`, after the handler, so a
    redirect or a JSON answer costs nothing. A key the handler set wins.
    """
    if isinstance(response, Template):
        request = response.context.get("request")
        if isinstance(request, Request):
            for provider in request.app.state.get(CONTEXT_PROVIDERS, ()):
                for key, value in (await provider(request)).items():
                    response.context.setdefault(key, value)
    return response


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
) -> Template:
    """Render ``template`` with the shared context plus ``context``; status ``status_code``."""
    full = shared_context(request)
    full.update(context or {})
    out_cookies = list(cookies or [])
    if full["flashes"]:
        https = request.app.state.settings.https
        out_cookies.append(expired_cookie(_flash_name(request), https=https))
    return Template(
        template_name=template,
        context=full,
        status_code=status_code,
        cookies=out_cookies,
        media_type=MediaType.HTML,  # said, not guessed from the template's name per response
    )


def redirect(
    request: Request,
    path: str,
    *,
    flash: tuple[FlashCategory, str] | None = None,
    cookies: list[Cookie] | None = None,
) -> Redirect:
    """303 See Other to the local ``path``, optionally carrying one flash message."""
    out_cookies = list(cookies or [])
    if flash is not None:
        category, text = flash
        value = _flash_signer(request).sign([[category, text[:_MAX_FLASH_CHARS]]])
        out_cookies.append(
            make_cookie(_flash_name(request), value, https=request.app.state.settings.https)
        )
    return Redirect(path=path, status_code=303, cookies=out_cookies)


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """Return ``target`` if it is a same-site path (SECURITY.md S50), else ``default``.

    Accepted: starts with a single ``/``, no backslash, no scheme or host, no control characters.
    """
    if not target or len(target) > 2000:
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    return target
