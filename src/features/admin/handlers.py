"""Admin pages: figures, the user list, one user's page and the actions on it (HTTP only).

Every route needs the ``admin`` role (``guards=[requires_admin]``: others 403, anonymous
visitors the sign-in page; SECURITY.md S39). Every action is a CSRF-checked POST that emits a
security event for the audit trail. Forms only ever name the one field an action needs, so
extra fields (``role``, ``email_verified_at``, ``id`` …) in a post change nothing (S40).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.admin.schemas import (
    ROLE_FILTERS,
    SORT_LABELS,
    STATUS_FILTERS,
    TWO_FACTOR_FILTERS,
    VERIFIED_FILTERS,
    UserQuery,
    parse_role,
    parse_user_id,
    parse_user_query,
)
from features.admin.service import AdminService, LastAdmin, SelfChange, UserNotFound
from features.audit import service as audit_service
from features.core.auth.service import send_password_reset
from shared.database.repository import PageOutOfRange
from shared.events import emit_security_event
from shared.web.forms import read_form
from shared.web.guards import requires_admin
from shared.web.render import page, redirect

NOT_FOUND = "That user does not exist."
LAST_ADMIN = "This is the last active administrator: promote someone else first."
SELF_CHANGE = "You cannot disable or demote your own account. Ask another administrator."
RECENT_EVENTS = 20  # audit events about the account on its page


def _service(db_session: AsyncSession, state: State) -> AdminService:
    return AdminService(db_session, state.settings)


def _user_id(raw: str) -> uuid.UUID:
    user_id = parse_user_id(raw)
    if user_id is None:
        raise NotFoundException(NOT_FOUND)
    return user_id


def users_url(query: UserQuery, **changes: object) -> str:
    """``/admin/users?...`` for ``query`` with ``changes``; default values are left out."""
    params = query.params(**changes)
    return "/admin/users" + (f"?{urlencode(params)}" if params else "")


def _user_path(user_id: uuid.UUID) -> str:
    return f"/admin/users/{user_id}"


class AdminController(Controller):
    """``/admin`` and ``/admin/users/…``."""

    path = "/admin"
    guards = [requires_admin]

    async def _user_page(
        self,
        request: Request,
        service: AdminService,
        user_id: uuid.UUID,
        *,
        error: str | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        try:
            detail = await service.user_detail(user_id)
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        context = {
            "target": detail.user,
            "sessions": detail.sessions,
            "error": error,
            "errors": errors or {},
            "is_self": detail.user.id == request.user.id,
            "audit_events": await audit_service.recent_for_user(
                service.session, user_id, RECENT_EVENTS
            ),
        }
        return page(request, "admin/user.html", context, status_code=status_code)

    @get("/", name="admin.dashboard")
    async def dashboard(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template:
        """Figures over every account: users, new, verified, 2FA, live sessions, tasks."""
        overview = await _service(db_session, state).overview()
        return page(request, "admin/dashboard.html", {"overview": overview})

    @get("/users", name="admin.users")
    async def users(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template:
        """Search, filter, sort and page through users. Unknown filter values → 422; bad page → 404."""
        query, errors, page_invalid = parse_user_query(dict(request.query_params))
        if page_invalid:
            raise NotFoundException("That page does not exist.")
        try:
            results, stats = await _service(db_session, state).list_users(query)
        except PageOutOfRange:
            raise NotFoundException("That page does not exist.") from None
        context = {
            "users": results,
            "stats": stats,
            "query": query,
            "errors": errors,
            "users_url": lambda **changes: users_url(query, **changes),
            "filters": {
                "role": ROLE_FILTERS,
                "status": STATUS_FILTERS,
                "verified": VERIFIED_FILTERS,
                "two_factor": TWO_FACTOR_FILTERS,
            },
            "sort_labels": SORT_LABELS,
        }
        return page(request, "admin/users.html", context, status_code=422 if errors else 200)

    @get("/users/{user_id:str}", name="admin.user")
    async def user(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Template:
        """One account: profile, status, role, verification, 2FA, dates, live sessions and the
        newest audit events about it."""
        return await self._user_page(request, _service(db_session, state), _user_id(user_id))

    @post("/users/{user_id:str}/role", name="admin.user_role")
    async def change_role(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Template | Redirect:
        """Make the account a ``user`` or an ``admin`` (the ``role`` field)."""
        target_id = _user_id(user_id)
        service = _service(db_session, state)
        role = parse_role((await read_form(request)).get("role", ""))
        if role is None:
            errors = {"role": "Choose user or admin."}
            return await self._user_page(
                request, service, target_id, errors=errors, status_code=422
            )
        try:
            old = await service.change_role(request.user.id, target_id, role)
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        except (LastAdmin, SelfChange) as exc:
            message = LAST_ADMIN if isinstance(exc, LastAdmin) else SELF_CHANGE
            return await self._user_page(
                request, service, target_id, error=message, status_code=409
            )
        if old == role:
            return redirect(request, _user_path(target_id), flash=("info", "Nothing changed."))
        emit_security_event(
            request, "authz_role_change", user_id=target_id, old=old.value, new=role.value
        )
        return redirect(
            request, _user_path(target_id), flash=("success", f"Role changed to {role.value}.")
        )

    @post("/users/{user_id:str}/disable", name="admin.user_disable")
    async def disable(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Template | Redirect:
        """Disable the account: it cannot sign in and every session ends now (S19)."""
        target_id = _user_id(user_id)
        service = _service(db_session, state)
        try:
            ended = await service.disable(request.user.id, target_id)
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        except (LastAdmin, SelfChange) as exc:
            message = LAST_ADMIN if isinstance(exc, LastAdmin) else SELF_CHANGE
            return await self._user_page(
                request, service, target_id, error=message, status_code=409
            )
        if ended is None:
            return redirect(request, _user_path(target_id), flash=("info", "Already disabled."))
        emit_security_event(request, "user_disabled", user_id=target_id, sessions_ended=ended)
        return redirect(
            request,
            _user_path(target_id),
            flash=("success", f"Account disabled; {ended} session(s) ended."),
        )

    @post("/users/{user_id:str}/enable", name="admin.user_enable")
    async def enable(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Redirect:
        """Let a disabled account sign in again."""
        target_id = _user_id(user_id)
        try:
            changed = await _service(db_session, state).enable(target_id)
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        if not changed:
            return redirect(request, _user_path(target_id), flash=("info", "Already active."))
        emit_security_event(request, "user_enabled", user_id=target_id)
        return redirect(request, _user_path(target_id), flash=("success", "Account enabled."))

    @post("/users/{user_id:str}/sessions/end", name="admin.user_end_sessions")
    async def end_sessions(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Redirect:
        """Sign the account out everywhere."""
        target_id = _user_id(user_id)
        try:
            ended = await _service(db_session, state).end_sessions(target_id)
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        emit_security_event(request, "admin_sessions_revoked", user_id=target_id, count=ended)
        return redirect(
            request, _user_path(target_id), flash=("success", f"{ended} session(s) ended.")
        )

    @post("/users/{user_id:str}/verify-email", name="admin.user_verify_email")
    async def verify_email(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Redirect:
        """Mark the account's email address verified (the administrator vouches for it)."""
        target_id = _user_id(user_id)
        try:
            changed = await _service(db_session, state).verify_email(target_id)
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        if not changed:
            return redirect(request, _user_path(target_id), flash=("info", "Already verified."))
        emit_security_event(request, "admin_email_verified", user_id=target_id)
        return redirect(request, _user_path(target_id), flash=("success", "Email marked verified."))

    @post("/users/{user_id:str}/password-reset", name="admin.user_password_reset")
    async def password_reset(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        state: State,
        user_id: FromPath[str],
    ) -> Redirect:
        """Mail the account a password-reset link (the administrator never sees or sets the
        password). A disabled account gets none; a mail the mailer refuses is reported as not
        sent, never as sent."""
        target_id = _user_id(user_id)
        try:
            sent = await send_password_reset(
                db_session, state.settings, state.passwords, state.mail, target_id
            )
        except UserNotFound:
            raise NotFoundException(NOT_FOUND) from None
        if sent == "disabled":
            message = "The account is disabled: enable it before sending a reset link."
            return redirect(request, _user_path(target_id), flash=("error", message))
        if sent == "not_sent":
            message = "The reset mail could not be sent to this account (see the server log)."
            return redirect(request, _user_path(target_id), flash=("error", message))
        emit_security_event(request, "admin_password_reset_sent", user_id=target_id)
        return redirect(
            request, _user_path(target_id), flash=("success", "Password reset link sent.")
        )
