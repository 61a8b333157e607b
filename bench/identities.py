"""Sign seeded users in over HTTP before a run, and check every scenario's answer once.

The load generator replays what a browser would send: the session cookie a real sign-in set
and the CSRF token the signed-in page carries (SECURITY.md S21, S22), or, for the sign-in
scenario, a guest's CSRF cookie and token from the sign-in page. Several users sign in so
the load spreads over sessions and task lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.seed import PASSWORD, email_of

TOKEN_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')


class PreparationError(RuntimeError):
    """A target answered the preparation requests unexpectedly (the run would be meaningless)."""


def csrf_from(html: str, what: str) -> str:
    """The CSRF token in a rendered page (raises :class:`PreparationError` if absent)."""
    match = TOKEN_RE.search(html)
    if not match:
        raise PreparationError(f"no CSRF field in {what}")
    return match.group(1)


@dataclass(frozen=True, slots=True)
class Identity:
    """One signed-in browser: its ``Cookie`` header value and its CSRF token."""

    cookie: str
    csrf: str


@dataclass(frozen=True, slots=True)
class Guest:
    """A guest browser on the sign-in page: its CSRF cookie header and token."""

    cookie: str
    csrf: str


def _cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)


def guest(base_url: str) -> Guest:
    """GET ``/login`` as a new browser; return its guest CSRF cookie and token."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        page = client.get("/login")
        if page.status_code != 200:
            raise PreparationError(f"GET /login answered {page.status_code}")
        return Guest(cookie=_cookie_header(client), csrf=csrf_from(page.text, "/login"))


def sign_in(base_url: str, user_index: int) -> Identity:
    """Sign in seeded user ``user_index`` through the sign-in form; return the browser state."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        page = client.get("/login")
        token = csrf_from(page.text, "/login")
        answer = client.post(
            "/login",
            data={"email": email_of(user_index), "password": PASSWORD, "_csrf_token": token},
        )
        if answer.status_code != 303:
            raise PreparationError(
                f"sign-in of {email_of(user_index)} answered {answer.status_code}"
            )
        dashboard = client.get("/dashboard")
        if dashboard.status_code != 200:
            raise PreparationError(f"GET /dashboard after sign-in answered {dashboard.status_code}")
        # Keep only the session cookie: a flash cookie would be consumed by the first page.
        session = [c for c in client.cookies.jar if c.name.endswith("session")]
        if len(session) != 1:
            raise PreparationError("sign-in set no session cookie")
        return Identity(
            cookie=f"{session[0].name}={session[0].value}",
            csrf=csrf_from(dashboard.text, "/dashboard"),
        )


def sign_in_many(base_url: str, count: int, users: int) -> list[Identity]:
    """Sign in ``count`` distinct seeded users (spread over the ``users`` seeded)."""
    step = max(1, users // max(1, count))
    return [sign_in(base_url, (i * step) % users) for i in range(count)]


def write_identities(path: Path, identities: list[Identity]) -> Path:
    """One ``cookie<TAB>csrf`` line per identity (read by ``bench/lua/scenario.lua``)."""
    path.write_text("".join(f"{i.cookie}\t{i.csrf}\n" for i in identities))
    return path


def capture(base_url: str, identity: Identity, path: str) -> bytes:
    """The body ``identity`` gets for ``path`` (the ceiling serves the dashboard's bytes)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        answer = client.get(path, headers={"cookie": identity.cookie})
        if answer.status_code != 200:
            raise PreparationError(f"GET {path} answered {answer.status_code}")
        return answer.content
