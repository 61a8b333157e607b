"""Settings → Profile (name, email), Password and Delete account; the email-change link page
and the page of the link that undoes a change (``/revert-email/<token>``, mailed to the old
address).

Changing the email and deleting the account need a password confirmed within 15 minutes
(``requires_recent_password``, S20); changing the password needs the current one (S4) and is
throttled like a password confirmation. Mail leaves after the commit (``shared.mail``).
"""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth import login_guard, mails
from features.core.auth.account.service import (
    AccountService,
    SameEmail,
    WrongPassword,
)
from features.core.auth.handlers import PASSWORD_FIELDS, _client
from features.core.auth.links import THROTTLED, link_refused, token_page
from features.core.auth.schemas import password_error
from features.core.auth.service import requires_recent_password
from features.core.auth.tokens import TokenRefused
from features.sessions.service import cookie_max_age, session_cookie_name
from features.users.service import EmailTaken, LastAdmin, email_error, name_error, normalise_email
from shared.events import emit_security_event
from shared.security import throttle
from shared.web.cookies import expired_cookie, make_cookie
from shared.web.forms import read_form
from shared.web.render import page, redirect

PROFILE_PATH = "/settings/profile"
EMAIL_PATH = "/settings/email"
PASSWORD_PATH = "/settings/password"
DELETE_PATH = "/settings/delete"
CHANGE_SENT = "We sent a link to {email}. Your address changes when you open it (within 24 hours)."
LAST_ADMIN = "You are the last active administrator: make someone else an administrator first."


def _address_taken(request: Request, message: str, *, again: tuple[str, str]) -> Template:
    """The 409 page of a link whose address another account took meanwhile (nothing changed);
    ``again`` is ``(path, label)`` of the way on."""
    context = {"message": message, "again_path": again[0], "again_label": again[1]}
    return token_page(request, "auth/link_refused.html", context, status_code=409)


def _service(db_session: AsyncSession, state: State) -> AccountService:
    return AccountService(db_session, state.settings, state.passwords)


class AccountController(Controller):
    """``/settings/profile``, ``/settings/email``, ``/settings/password``, ``/settings/delete``."""

    @get(PROFILE_PATH, name="settings.profile")
    async def profile(self, request: Request) -> Template:
        """Name (editable), email (with a link to change it), and the way to delete the account."""
        return page(
            request,
            "account/profile.html",
            {"section": "profile", "form": {"name": request.user.name}, "errors": {}},
        )

    @post(PROFILE_PATH, name="settings.profile_post")
    async def rename(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Change the display name (422 with the field error when it is not acceptable)."""
        name = (await read_form(request)).get("name", "")
        if message := name_error(name):
            context = {"section": "profile", "form": {"name": name}, "errors": {"name": message}}
            return page(request, "account/profile.html", context, status_code=422)
        changed = await _service(db_session, state).rename(request.user.id, name)
        flash = ("success", "Name saved.") if changed else ("info", "Nothing changed.")
        return redirect(request, PROFILE_PATH, flash=flash)

    @get(EMAIL_PATH, guards=[requires_recent_password], name="settings.email")
    async def email_page(self, request: Request) -> Template:
        """The form for a new address (after a recent password confirmation, S20)."""
        return page(request, "account/email.html", {"section": "profile", "form": {}, "errors": {}})

    @post(EMAIL_PATH, guards=[requires_recent_password], name="settings.email_post")
    async def request_email_change(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Mail a link to the new address. Equal to the current one → 422; taken → the same
        answer as free, and a notice to its owner (no enumeration); once a minute (S35)."""
        raw = (await read_form(request)).get("email", "")
        message = email_error(raw)
        if message is None and normalise_email(raw) == request.user.email:
            message = "That is already your email address."
        if message is None:
            retry = await throttle.hit(state, "verification_resend", f"change|{request.user.id}")
            if retry is not None:
                context = {
                    "section": "profile",
                    "form": {"email": raw},
                    "errors": {"form": THROTTLED},
                }
                response = page(request, "account/email.html", context, status_code=429)
                response.headers["Retry-After"] = str(retry)
                return response
            try:
                asked = await _service(db_session, state).request_email_change(request.user.id, raw)
            except SameEmail:
                message = "That is already your email address."
            else:
                if asked.token is not None:
                    mails.confirm_new_email(
                        state.mail, asked.new_email, asked.user.name, asked.token
                    )
                elif asked.owner is not None:
                    key = f"taken|{asked.owner.email}"
                    if await throttle.hit(state, "verification_resend", key) is None:
                        mails.address_in_use(state.mail, asked.owner.email, asked.owner.name)
                emit_security_event(request, "authn_email_change_request", user_id=request.user.id)
                flash = ("success", CHANGE_SENT.format(email=asked.new_email))
                return redirect(request, PROFILE_PATH, flash=flash)
        context = {"section": "profile", "form": {"email": raw}, "errors": {"email": message}}
        return page(request, "account/email.html", context, status_code=422)

    @get(PASSWORD_PATH, name="settings.password")
    async def password_page(self, request: Request) -> Template:
        """Current password, new password, confirmation."""
        return page(request, "account/password.html", {"section": "password", "errors": {}})

    @post(PASSWORD_PATH, name="settings.password_post")
    async def change_password(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Needs the current password (S4, throttled like a confirmation); the new one follows
        S3; other sessions end and this one gets a new id (S18); a confirmation mail follows."""
        data = await read_form(request, keep_whitespace=PASSWORD_FIELDS | {"current_password"})
        current = data.get("current_password", "")
        password, confirmation = data.get("password", ""), data.get("password_confirmation", "")
        errors: dict[str, str] = {}
        if not current:
            errors["current_password"] = "Enter your current password."
        if message := password_error(password):
            errors["password"] = message
        elif password != confirmation:
            errors["password_confirmation"] = "The two passwords do not match."
        if not errors:
            await login_guard.refuse_confirmation_if_throttled(request, state)
            try:
                _, token, row = await _service(db_session, state).change_password(
                    request.auth, current, password, _client(request)
                )
            except WrongPassword:
                await login_guard.after_confirmation(request, state, False)
                errors["current_password"] = "That password is not right."
            else:
                await login_guard.after_confirmation(request, state, True)
                emit_security_event(request, "authn_password_change", user_id=request.user.id)
                settings = state.settings
                cookie = make_cookie(
                    session_cookie_name(settings),
                    token,
                    https=settings.https,
                    max_age=cookie_max_age(settings, row.remember),
                )
                flash = ("success", "Password changed. Your other sessions were signed out.")
                return redirect(request, PASSWORD_PATH, flash=flash, cookies=[cookie])
        context = {"section": "password", "errors": errors}
        return page(request, "account/password.html", context, status_code=422)

    @get(DELETE_PATH, guards=[requires_recent_password], name="settings.delete")
    async def delete_page(self, request: Request) -> Template:
        """What deleting means, and the field to type the address into (S20)."""
        return page(request, "account/delete.html", {"section": "profile", "errors": {}})

    @post(DELETE_PATH, guards=[requires_recent_password], name="settings.delete_post")
    async def delete(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Typing the account's address confirms; the account and everything it owns are
        deleted, a goodbye mail is sent and the browser is signed out."""
        typed = normalise_email((await read_form(request)).get("confirm_email", ""))
        error = None
        if typed != request.user.email:
            error = "Type your email address exactly as shown to confirm."
        else:
            try:
                user = await _service(db_session, state).delete_account(request.user.id)
            except LastAdmin:
                error = LAST_ADMIN
            else:
                mails.goodbye(state.mail, user.email, user.name)
                emit_security_event(request, "user_deleted", user_id=user.id, actor_id=user.id)
                settings = state.settings
                cookie = expired_cookie(session_cookie_name(settings), https=settings.https)
                flash = ("info", "Your account and everything in it were deleted. Goodbye.")
                return redirect(request, "/login", flash=flash, cookies=[cookie])
        context = {"section": "profile", "errors": {"confirm_email": error}}
        status = 409 if error == LAST_ADMIN else 422
        return page(request, "account/delete.html", context, status_code=status)


class EmailChangeLinkController(Controller):
    """``/confirm-email/<token>``: the link mailed to the new address (public: it may be opened
    in another browser; a link of another account than the signed-in one is refused)."""

    @get("/confirm-email/{token:str}", opt={"public": True}, name="account.confirm_email")
    async def confirm_page(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        token: FromPath[str],
    ) -> Template:
        """Checks the link (changes nothing, S24) and asks for one click."""
        user = request.scope.get("user")
        try:
            owner, new_email = await _service(db_session, state).check_email_change(
                token, user.id if user else None
            )
        except TokenRefused as refused:
            return link_refused(request, "change", refused)
        context = {"token": token, "old_email": owner.email, "new_email": new_email}
        return token_page(request, "account/confirm_email.html", context)

    @post("/confirm-email", opt={"public": True}, name="account.confirm_email_post")
    async def confirm(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Use the link: the account takes the new address; the old address gets a notice."""
        token = (await read_form(request)).get("token", "")
        user = request.scope.get("user")
        try:
            changed = await _service(db_session, state).confirm_email_change(
                token, user.id if user else None
            )
        except TokenRefused as refused:
            return link_refused(request, "change", refused)
        except EmailTaken:
            return _address_taken(
                request,
                "Another account uses that address now, so it cannot be yours.",
                again=(PROFILE_PATH, "Back to your profile"),
            )
        mails.email_was_changed(
            state.mail,
            changed.old_email,
            changed.user.name,
            changed.new_email,
            changed.revert_token,
        )
        emit_security_event(
            request, "authn_email_change", user_id=changed.user.id, actor_id=changed.user.id
        )
        message = f"Your email address is now {changed.new_email}."
        if user is not None:
            return redirect(request, PROFILE_PATH, flash=("success", message))
        return redirect(request, "/login", flash=("success", message + " Sign in with it."))


class EmailRevertLinkController(Controller):
    """``/revert-email/<token>``: the link in the "your email address was changed" notice, sent
    to the old address (public: whoever changed the address may hold every session). Opening it
    changes nothing (S24); its button restores the address, signs every session out (S18),
    removes the password and mails a reset link to the restored address."""

    @get("/revert-email/{token:str}", opt={"public": True}, name="account.revert_email")
    async def revert_page(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        token: FromPath[str],
    ) -> Template:
        """Checks the link (changes nothing) and says what undoing does."""
        try:
            owner, old_email = await _service(db_session, state).check_email_revert(token)
        except TokenRefused as refused:
            return link_refused(request, "revert", refused)
        context = {"token": token, "old_email": old_email, "current_email": owner.email}
        return token_page(request, "account/revert_email.html", context)

    @post("/revert-email", opt={"public": True}, name="account.revert_email_post")
    async def revert(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Undo the change; this browser is signed out too, and lands on the sign-in page."""
        token = (await read_form(request)).get("token", "")
        try:
            restored = await _service(db_session, state).revert_email_change(token)
        except TokenRefused as refused:
            return link_refused(request, "revert", refused)
        except EmailTaken:
            return _address_taken(
                request,
                "Another account uses that address now, so it cannot come back.",
                again=("/forgot-password", "Reset the password instead"),
            )
        mails.email_restored(state.mail, restored.email, restored.user.name, restored.reset_token)
        emit_security_event(
            request,
            "authn_email_change_revert",
            user_id=restored.user.id,
            actor_id=restored.user.id,
        )
        settings = state.settings
        cookie = expired_cookie(session_cookie_name(settings), https=settings.https)
        message = (
            f"The account uses {restored.email} again and every session was signed out. "
            "We sent that address a link to choose a new password."
        )
        return redirect(request, "/login", flash=("success", message), cookies=[cookie])
