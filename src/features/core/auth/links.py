"""Pages behind the links in account mails, and the pages that send them (HTTP only).

- ``/register/check-email``: where every sign-up lands, taken address or not (S7).
- ``/verify-email``: what an unverified account sees until it verifies, with a throttled
  "send the link again" button (S35); ``/verify-email/<token>`` asks to confirm, and the POST
  marks the address verified and signs its owner in (S11).
- ``/forgot-password`` and ``/reset-password/<token>``: the same answer for every address (S8),
  throttled per address (S35); the link sets a new password, ends every session and signs
  nobody in (S18, S36).

A link is opened by GET, which changes nothing (S24: mail scanners prefetch links); the page's
button POSTs the token back. Token pages send ``Referrer-Policy: no-referrer`` and the access
log redacts the token segment of the path (S37). Bad links: 404 when invalid (malformed,
unknown, superseded, another kind's), 410 Gone when used, expired or sent to an old address;
each with a way to get a new one.
"""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth import login_guard, mails
from features.core.auth.handlers import PASSWORD_FIELDS, TWO_FACTOR_PATH, _client, _service
from features.core.auth.models import TokenKind
from features.core.auth.schemas import password_error
from features.core.auth.tokens import TokenRefused
from features.sessions.service import cookie_max_age, session_cookie_name
from features.users.service import email_error, normalise_email
from shared.events import emit_security_event
from shared.security import throttle
from shared.web.cookies import make_cookie
from shared.web.forms import read_form
from shared.web.guards import VERIFY_EMAIL_PATH
from shared.web.render import page, redirect

NO_REFERRER = {"Referrer-Policy": "no-referrer"}
LinkKind = Literal["verify", "reset", "change", "revert"]

REFUSALS = {
    "invalid": "This link is not valid. It may be incomplete, or a newer link replaced it.",
    "used": "This link was already used. Each link works only once.",
    "expired": "This link has expired.",
    "stale": "This link was sent to an address the account no longer uses.",
}
AGAIN = {
    "verify": ("/login", "Sign in to get a new link"),
    "reset": ("/forgot-password", "Request a new link"),
    "change": ("/settings/profile", "Start the change again"),
    "revert": ("/forgot-password", "Reset the password instead"),
}
RESET_SENT = (
    "If an account uses {email}, we have sent it a link to choose a new password. "
    "The link works for 60 minutes."
)
THROTTLED = "You asked for a link a moment ago. Wait a minute before asking again."


def link_refused(request: Request, kind: LinkKind, refused: TokenRefused) -> Template:
    """The page for a link that cannot be used: 404 or 410, and how to get a new one."""
    again_path, again_label = AGAIN[kind]
    if kind == "verify" and request.scope.get("user") is not None:
        again_path = VERIFY_EMAIL_PATH
    response = page(
        request,
        "auth/link_refused.html",
        {
            "message": REFUSALS[refused.reason],
            "again_path": again_path,
            "again_label": again_label,
        },
        status_code=refused.status,
    )
    response.headers.update(NO_REFERRER)
    return response


def token_page(request: Request, template: str, context: dict, status_code: int = 200) -> Template:
    """``template`` rendered for a page whose address holds a secret link token: answered with
    ``Referrer-Policy: no-referrer`` so the token never leaves in a ``Referer`` header."""
    response = page(request, template, context, status_code=status_code)
    response.headers.update(NO_REFERRER)
    return response


class EmailLinkController(Controller):
    """Verification and password-reset pages."""

    @get("/register/check-email", opt={"public": True}, name="auth.check_email")
    async def check_email(self, request: Request) -> Template:
        """The "check your inbox" page: the same whether the address was new or taken (S7)."""
        return page(request, "auth/check_email.html")

    @get(VERIFY_EMAIL_PATH, opt={"unverified": True}, name="auth.verify_email")
    async def verify_notice(self, request: Request) -> Template | Redirect:
        """What an unverified account sees instead of every other page, with the resend button."""
        if request.user.verified:
            return redirect(request, "/dashboard")
        return page(request, "auth/verify_email.html")

    @post(f"{VERIFY_EMAIL_PATH}/resend", opt={"unverified": True}, name="auth.verify_resend")
    async def resend(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Mail a new verification link (the old one dies); once a minute per address (S35)."""
        if request.user.verified:
            return redirect(request, "/dashboard")
        retry = await throttle.hit(
            state, "verification_resend", normalise_email(request.user.email)
        )
        if retry is not None:
            response = page(
                request, "auth/verify_email.html", {"error": THROTTLED}, status_code=429
            )
            response.headers["Retry-After"] = str(retry)
            return response
        issued = await _service(db_session, state).new_verification_token(request.user.id)
        if issued is None:
            return redirect(request, "/dashboard")
        user, token = issued
        mails.verify_email(state.mail, user.email, user.name, token)
        return redirect(
            request, VERIFY_EMAIL_PATH, flash=("success", f"We sent a new link to {user.email}.")
        )

    @get(f"{VERIFY_EMAIL_PATH}/{{token:str}}", opt={"public": True}, name="auth.verify_link")
    async def verify_link(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        token: FromPath[str],
    ) -> Template:
        """The verification link: checks it (changes nothing) and asks for one click (S24)."""
        service = _service(db_session, state)
        try:
            row = await service.tokens.check(token, TokenKind.VERIFY_EMAIL)
        except TokenRefused as refused:
            return link_refused(request, "verify", refused)
        return token_page(request, "auth/verify_confirm.html", {"token": token, "email": row.email})

    @post(f"{VERIFY_EMAIL_PATH}/confirm", opt={"public": True}, name="auth.verify_confirm")
    async def verify_confirm(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Use the link: the address is verified and its owner signed in (new session, S11)."""
        data = await read_form(request)
        try:
            signed_in = await _service(db_session, state).verify_email(
                data.get("token", ""), _client(request)
            )
        except TokenRefused as refused:
            return link_refused(request, "verify", refused)
        user = signed_in.user
        emit_security_event(request, "authn_email_verified", user_id=user.id, actor_id=user.id)
        settings = state.settings
        if signed_in.two_factor_pending:
            await login_guard.after_login_success(
                request, state, user.email, user.id, via="two_factor_pending"
            )
            cookie = make_cookie(
                session_cookie_name(settings), signed_in.token, https=settings.https
            )
            return redirect(request, TWO_FACTOR_PATH, cookies=[cookie])
        await login_guard.after_login_success(
            request, state, user.email, user.id, via="email_verification"
        )
        cookie = make_cookie(
            session_cookie_name(settings),
            signed_in.token,
            https=settings.https,
            max_age=cookie_max_age(settings, signed_in.session.remember),
        )
        return redirect(
            request,
            "/dashboard",
            flash=(
                "success",
                f"Welcome to {settings.app_name}, {user.name}. Your email address is verified.",
            ),
            cookies=[cookie],
        )

    @get("/forgot-password", opt={"public": True}, name="auth.forgot_password")
    async def forgot_page(self, request: Request) -> Template:
        """Ask for the address to send a reset link to."""
        return page(request, "auth/forgot_password.html", {"form": {}, "errors": {}})

    @post("/forgot-password", opt={"public": True}, name="auth.forgot_password_post")
    async def forgot(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """The same answer for every well-formed address (S8); a link only to an enabled
        account; at most one request per minute per address (S35, 429)."""
        data = await read_form(request)
        raw = data.get("email", "")
        if message := email_error(raw):
            context = {"form": {"email": raw}, "errors": {"email": message}}
            return page(request, "auth/forgot_password.html", context, status_code=422)
        email = normalise_email(raw)
        retry = await throttle.hit(state, "password_reset", email)
        if retry is not None:
            context = {"form": {"email": raw}, "errors": {"form": THROTTLED}}
            response = page(request, "auth/forgot_password.html", context, status_code=429)
            response.headers["Retry-After"] = str(retry)
            return response
        issued = await _service(db_session, state).request_password_reset(email)
        if issued is not None:
            user, token = issued
            mails.reset_password(state.mail, user.email, user.name, token, by_admin=False)
        emit_security_event(
            request,
            "authn_password_reset_request",
            user_id=issued[0].id if issued else None,
            actor_id=None,
            outcome="success" if issued else "failure",
        )
        return redirect(request, "/login", flash=("info", RESET_SENT.format(email=email)))

    @get("/reset-password/{token:str}", opt={"public": True}, name="auth.reset_password")
    async def reset_page(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        token: FromPath[str],
    ) -> Template:
        """The reset link: the new-password form (the link is checked, not used, S24)."""
        try:
            user = await _service(db_session, state).check_reset_token(token)
        except TokenRefused as refused:
            return link_refused(request, "reset", refused)
        context = {"token": token, "email": user.email, "errors": {}}
        return token_page(request, "auth/reset_password.html", context)

    @post("/reset-password", opt={"public": True}, name="auth.reset_password_post")
    async def reset(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Set the new password (S3), end every session (S18, S36), sign nobody in."""
        data = await read_form(request, keep_whitespace=PASSWORD_FIELDS)
        token = data.get("token", "")
        password, confirmation = data.get("password", ""), data.get("password_confirmation", "")
        service = _service(db_session, state)
        errors: dict[str, str] = {}
        if message := password_error(password):
            errors["password"] = message
        elif password != confirmation:
            errors["password_confirmation"] = "The two passwords do not match."
        try:
            if errors:
                user = await service.check_reset_token(token)
                context = {"token": token, "email": user.email, "errors": errors}
                return token_page(request, "auth/reset_password.html", context, status_code=422)
            user = await service.reset_password(token, password)
        except TokenRefused as refused:
            return link_refused(request, "reset", refused)
        emit_security_event(request, "authn_password_reset", user_id=user.id, actor_id=user.id)
        return redirect(
            request,
            "/login",
            flash=("success", "Your password was changed. Sign in with your new password."),
        )
