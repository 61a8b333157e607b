"""Sign-up, sign-in, password confirmation and sign-out pages (HTTP only; rules live in
``service``). The pages behind mailed links are in :mod:`features.core.auth.links`."""

from __future__ import annotations

from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth import login_guard, mails
from features.core.auth.schemas import parse_login, parse_register
from features.core.auth.service import LOGIN_FAILED, AuthService, ClientInfo, SignedIn
from features.sessions.service import cookie_max_age, session_cookie_name
from features.users.service import normalise_email
from shared.events import emit_security_event
from shared.security import throttle
from shared.web.client import client_ip, user_agent
from shared.web.cookies import expired_cookie, make_cookie
from shared.web.forms import read_form
from shared.web.render import page, redirect, safe_next

PASSWORD_FIELDS = frozenset({"password", "password_confirmation"})
TWO_FACTOR_PATH = "/login/two-factor"


def _service(db_session: NamedDependency[AsyncSession], state: State) -> AuthService:
    return AuthService(db_session, state.settings, state.passwords)


def _client(request: Request) -> ClientInfo:
    auth = request.scope.get("auth") or request.scope.get("pending_login")
    return ClientInfo(
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        previous_session=auth.id if auth else None,
    )


def _signed_in_redirect(
    request: Request, state: State, signed_in: SignedIn, target: str, message: str
) -> Redirect:
    settings = state.settings
    cookie = make_cookie(
        session_cookie_name(settings),
        signed_in.token,
        https=settings.https,
        max_age=cookie_max_age(settings, signed_in.session.remember),
    )
    return redirect(request, target, flash=("success", message), cookies=[cookie])


class AuthController(Controller):
    """``/login``, ``/register``, ``/logout`` and the root redirect."""

    @get("/", opt={"public": True}, name="home")
    async def home(self, request: Request) -> Redirect:
        """Send signed-in people to the dashboard and everyone else to sign in."""
        return Redirect("/dashboard" if request.scope.get("user") else "/login", status_code=303)

    @get("/login", opt={"public": True}, name="auth.login")
    async def login_page(
        self, request: Request, next: FromQuery[str | None] = None
    ) -> Template | Redirect:
        """The sign-in form; a signed-in visitor goes straight on."""
        if request.scope.get("user"):
            return Redirect(safe_next(next), status_code=303)
        return page(
            request, "auth/login.html", {"form": {}, "errors": {}, "next": safe_next(next, "")}
        )

    @post("/login", opt={"public": True}, name="auth.login_post")
    async def login(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Check the credentials; success → 303 to ``next`` or the dashboard, failure → 422."""
        data = await read_form(request, keep_whitespace=PASSWORD_FIELDS)
        target = safe_next(data.get("next"))
        form, errors = parse_login(data)
        if form:
            await login_guard.refuse_if_throttled(request, state, form.email)
        service = _service(db_session, state)
        signed_in = (
            await service.login(form, _client(request), reads=state.db.single_read_engine)
            if form
            else None
        )
        if form and signed_in is None:
            await login_guard.after_login_failure(
                request, state, form.email, service.attempted_user_id
            )
        if form and signed_in is not None:
            via = "two_factor_pending" if signed_in.two_factor_pending else "password"
            await login_guard.after_login_success(
                request, state, form.email, signed_in.user.id, via=via
            )
        if signed_in is None:
            context = {
                "form": {"email": data.get("email", ""), "remember": data.get("remember")},
                "errors": errors or {"form": LOGIN_FAILED},
                "next": safe_next(data.get("next"), ""),
            }
            return page(request, "auth/login.html", context, status_code=422)
        if signed_in.two_factor_pending:  # S12: the challenge comes first
            cookie = make_cookie(
                session_cookie_name(state.settings), signed_in.token, https=state.settings.https
            )
            challenge = TWO_FACTOR_PATH + (
                f"?next={quote(target, safe='/')}" if data.get("next") else ""
            )
            return redirect(request, challenge, cookies=[cookie])
        return _signed_in_redirect(
            request, state, signed_in, target, f"Welcome back, {signed_in.user.name}."
        )

    @get("/register", opt={"public": True}, name="auth.register")
    async def register_page(self, request: Request) -> Template | Redirect:
        """The sign-up form; a signed-in visitor goes to the dashboard."""
        if request.scope.get("user"):
            return Redirect("/dashboard", status_code=303)
        return page(request, "auth/register.html", {"form": {}, "errors": {}})

    @post("/register", opt={"public": True}, name="auth.register_post")
    async def register(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Create the account and mail its verification link (303 → "check your inbox"), or
        re-render with errors (422). A taken address gets the very same answer, and its owner
        a mail instead (S7). Nobody is signed in here: the link does that."""
        data = await read_form(request, keep_whitespace=PASSWORD_FIELDS)
        form, errors = parse_register(data)
        if form is not None:
            registration = await _service(db_session, state).register(form)
            user = registration.user
            if registration.taken:
                # At most one notice a minute per address, so the form cannot flood an inbox.
                key = f"taken|{user.email}"
                if await throttle.hit(state, "verification_resend", key) is None:
                    mails.account_exists(state.mail, user.email, user.name)
            else:
                assert registration.token is not None
                mails.verify_email(state.mail, user.email, user.name, registration.token)
                emit_security_event(request, "user_created", user_id=user.id, actor_id=user.id)
            return redirect(
                request,
                "/register/check-email",
                flash=("info", f"We sent a link to {normalise_email(form.email)}."),
            )
        context = {
            "form": {"name": data.get("name", ""), "email": data.get("email", "")},
            "errors": errors,
        }
        return page(request, "auth/register.html", context, status_code=422)

    @get("/confirm-password", name="auth.confirm_password")
    async def confirm_password_page(
        self, request: Request, next: FromQuery[str | None] = None
    ) -> Template:
        """Ask for the password again before a sensitive action (S20)."""
        return page(
            request,
            "auth/confirm_password.html",
            {"errors": {}, "next": safe_next(next, "/settings")},
        )

    @post("/confirm-password", name="auth.confirm_password_post")
    async def confirm_password(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Right password → 303 to ``next``; wrong → 422 with a message."""
        data = await read_form(request, keep_whitespace=PASSWORD_FIELDS)
        target = safe_next(data.get("next"), "/settings")
        password = data.get("password", "")
        await login_guard.refuse_confirmation_if_throttled(request, state)
        service = _service(db_session, state)
        ok = bool(password) and await service.confirm_password(
            request.user.id, request.auth.id, password
        )
        if password:
            await login_guard.after_confirmation(request, state, ok)
        if ok:
            return redirect(request, target)
        errors = {"password": "That password is not right." if password else "Enter your password."}
        return page(
            request,
            "auth/confirm_password.html",
            {"errors": errors, "next": target},
            status_code=422,
        )

    @post("/logout", opt={"unverified": True}, name="auth.logout")
    async def logout(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Redirect:
        """End the server-side session (S16) and clear the cookie."""
        await _service(db_session, state).logout(request.auth.id)
        emit_security_event(request, "authn_logout", user_id=request.user.id)
        settings = state.settings
        cookie = expired_cookie(session_cookie_name(settings), https=settings.https)
        return redirect(
            request, "/login", flash=("info", "You have been signed out."), cookies=[cookie]
        )
