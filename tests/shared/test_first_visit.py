"""First visits to public pages answered from a snapshot with fresh secrets (SECURITY.md S21,
S47; ``shared.web.first_visit``)."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware

import features.core.auth.handlers as auth_handlers
from shared.config import Settings
from shared.security.tokens import keyed_digest
from shared.web.csrf import CSRFMiddleware, csrf_token
from shared.web.first_visit import FirstVisitPages, cut, fill
from shared.web.headers import security_headers
from tests.conftest import SECRET_KEY, make_browser
from tests.support import DEFAULT_PASSWORD, csrf_from, register

NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9_\-]+)'")
COOKIE_RE = re.compile(r"^csrf=([A-Za-z0-9_\-]+); HttpOnly; Path=/; SameSite=lax$")


def _secrets(response: httpx.Response) -> tuple[str, str, str]:
    """The answer's CSP nonce, guest CSRF secret (its cookie) and form token."""
    [nonce] = set(NONCE_RE.findall(response.headers["content-security-policy"]))
    match = COOKIE_RE.match(response.headers["set-cookie"])
    assert match, response.headers["set-cookie"]
    return nonce, match.group(1), csrf_from(response.text)


def _without_secrets(response: httpx.Response) -> tuple[list[tuple[str, str]], str]:
    """Headers and body with this answer's own secrets (and request id) replaced by names."""
    nonce, secret, token = _secrets(response)
    names = {nonce: "NONCE", secret: "SECRET", token: "TOKEN"}
    names[response.headers["x-request-id"]] = "REQUEST-ID"

    def blank(text: str) -> str:
        for value, name in names.items():
            text = text.replace(value, name)
        return text

    headers = [(name, blank(value)) for name, value in response.headers.multi_items()]
    return headers, blank(response.text)


async def _first_visit(app: Litestar, path: str = "/login", **kwargs: Any) -> httpx.Response:
    async with make_browser(app, port=50100) as browser:  # a new browser: no cookies
        return await browser.request(kwargs.pop("method", "GET"), path, **kwargs)


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The templates the auth pages rendered, in order (the handlers' ``page`` is counted)."""
    seen: list[str] = []
    render = auth_handlers.page

    def counted(request: Request, template: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(template)
        return render(request, template, *args, **kwargs)

    monkeypatch.setattr(auth_handlers, "page", counted)
    return seen


async def test_s47_s21_a_replayed_first_visit_is_the_rendered_page_with_its_own_secrets(
    app: Litestar, client: httpx.AsyncClient, rendered: list[str]
) -> None:
    first, second = await _first_visit(app), await _first_visit(app)
    assert rendered == ["auth/login.html"] * 2  # two renders, equal beyond their secrets
    third, fourth = await _first_visit(app), await _first_visit(app)
    assert len(rendered) == 2  # answered from the snapshot, no handler ran

    for answer in (first, second, third, fourth):
        assert answer.status_code == 200
        assert _without_secrets(answer) == _without_secrets(first)
        nonce, secret, token = _secrets(answer)
        assert answer.text.count(f'nonce="{nonce}"') == 2  # the page's scripts carry it (S47)
        assert token == keyed_digest(SECRET_KEY, "csrf", secret)  # the token of its cookie
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "cache-control" not in answer.headers
        assert int(answer.headers["content-length"]) == len(answer.content)
    # Every answer's secrets are its own.
    for index in range(3):
        assert len({_secrets(a)[index] for a in (first, second, third, fourth)}) == 4
    assert len({a.headers["x-request-id"] for a in (first, second, third, fourth)}) == 4


async def test_s21_a_replayed_sign_in_form_signs_in_with_its_own_cookie_only(
    app: Litestar, client: httpx.AsyncClient, rendered: list[str]
) -> None:
    await register(client, "replayed@example.com")
    await _first_visit(app), await _first_visit(app)
    count = len(rendered)
    async with make_browser(app, 50101) as mine, make_browser(app, 50102) as other:
        mine_page, other_page = await mine.get("/login"), await other.get("/login")
        assert len(rendered) == count  # both from the snapshot
        form = {"email": "replayed@example.com", "password": DEFAULT_PASSWORD}
        refused = await other.post(
            "/login", data={**form, "_csrf_token": csrf_from(mine_page.text)}
        )
        assert refused.status_code == 403  # another browser's token does not fit this cookie
        assert "session" not in other.cookies
        accepted = await mine.post(
            "/login", data={**form, "_csrf_token": csrf_from(mine_page.text)}
        )
        assert accepted.status_code == 303 and accepted.headers["location"] == "/dashboard"
        assert (await mine.get("/dashboard")).status_code == 200
        # A signed-in browser asking for the sign-in page goes on; no snapshot is involved.
        again = await mine.get("/login")
        assert again.status_code == 303 and again.headers["location"] == "/dashboard"
        assert other_page.status_code == 200


async def test_requests_that_are_not_first_visits_are_rendered(
    app: Litestar, client: httpx.AsyncClient, rendered: list[str]
) -> None:
    await _first_visit(app), await _first_visit(app)
    count = len(rendered)
    await _first_visit(app)
    assert len(rendered) == count  # the snapshot is in use

    with_next = await _first_visit(app, "/login?next=/tasks")
    assert '<input type="hidden" name="next" value="/tasks">' in with_next.text
    assert len(rendered) == count + 1

    head = await _first_visit(app, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert len(rendered) == count + 2

    async with make_browser(app, 50103) as guest:
        kept = await guest.get("/login")
        secret = guest.cookies["csrf"]
        again = await guest.get("/login")  # brings its csrf cookie: rendered, the secret kept
        assert "set-cookie" not in again.headers and guest.cookies["csrf"] == secret
        assert csrf_from(again.text) == csrf_from(kept.text)
    assert len(rendered) == count + 3

    register_page = await _first_visit(app, "/register")
    assert register_page.status_code == 200 and "Create" in register_page.text


def _demo_app(handlers: list[Any]) -> Litestar:
    """A Litestar app with the CSRF middleware and the security headers, as the app has."""
    settings = Settings(app_env="test", secret_key=SECRET_KEY, app_url="http://testserver.local")
    app = Litestar(
        route_handlers=handlers,
        middleware=[DefineMiddleware(CSRFMiddleware)],
        before_send=[security_headers],
        state=State({"settings": settings}),
        logging_config=None,
    )
    app.asgi_handler = FirstVisitPages(app.asgi_handler, ["/same", "/varies"])
    return app


async def test_a_page_that_varies_between_first_visits_is_always_rendered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    visit_number: Callable[[], int] = itertools.count().__next__
    seen = {"same": 0, "varies": 0}

    def html(request: Request, text: str) -> Response[str]:
        token = csrf_token(request.scope)
        return Response(f"<p>{text}</p><i>{token}</i>", media_type=MediaType.HTML)

    @get("/same")
    async def same(request: Request) -> Response[str]:
        seen["same"] += 1
        return html(request, "always this")

    @get("/varies")
    async def varies(request: Request) -> Response[str]:
        seen["varies"] += 1
        return html(request, f"visit {visit_number()}")  # e.g. a count from the database

    app = _demo_app([same, varies])
    caplog.set_level(logging.WARNING, logger="slicestar.first_visit")
    for _ in range(4):
        for path in ("/same", "/varies"):
            answer = await _first_visit(app, path)
            assert answer.status_code == 200
            token = re.search(r"<i>([0-9a-f]{64})</i>", answer.text)
            assert token and token.group(1) == keyed_digest(
                SECRET_KEY, "csrf", answer.cookies["csrf"]
            )
    assert seen == {"same": 2, "varies": 4}
    assert [r.getMessage() for r in caplog.records] == [
        "First visits to /varies differ beyond their secrets; always rendered"
    ]


def test_cut_and_fill_replace_every_occurrence_of_each_value() -> None:
    values = (b"NONCE1", b"SECRET1", b"TOKEN1")
    parts = cut(b"<a n=NONCE1>TOKEN1</a><b n=NONCE1>", values)
    assert parts == (b"<a n=", 0, b">", 2, b"</a><b n=", 0, b">")
    assert fill(parts, (b"n2", b"s2", b"t2")) == b"<a n=n2>t2</a><b n=n2>"
    assert cut(b"no secret here", values) == (b"no secret here",)
