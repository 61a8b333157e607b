"""Settings → Sessions: list your browser sessions and end them (SECURITY.md S17, S20, S38)."""

from __future__ import annotations

import uuid

from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.sessions.service import SessionService, session_cookie_name
from shared.events import emit_security_event
from shared.web.client import describe_device
from shared.web.cookies import expired_cookie
from shared.web.render import page, redirect

SESSIONS_PATH = "/settings/sessions"


async def recent_password(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The S20 guard of ``features.core.auth.service`` (imported on use: core.auth imports
    this feature's service, so a module-level import would be circular)."""
    from features.core.auth.service import requires_recent_password

    await requires_recent_password(connection, handler)


class SessionsController(Controller):
    """``/settings/sessions``: where the signed-in user is signed in."""

    path = SESSIONS_PATH

    @get("/", name="sessions.index")
    async def index(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template:
        """Every live session: browser, OS, IP, signed in at, last active; this one marked."""
        sessions = await SessionService(db_session, state.settings).list_for_user(request.user.id)
        current = request.auth.id
        rows = [
            {"session": s, "device": describe_device(s.user_agent), "current": s.id == current}
            for s in sorted(sessions, key=lambda s: s.id != current)
        ]
        return page(
            request,
            "sessions/index.html",
            {"section": "sessions", "rows": rows, "others": len(rows) - 1},
        )

    @post("/{session_id:uuid}/end", name="sessions.end", guards=[recent_password])
    async def end(
        self,
        request: Request,
        session_id: FromPath[uuid.UUID],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> Redirect:
        """End one of your sessions (its next request is anonymous); someone else's → 404."""
        service = SessionService(db_session, state.settings)
        if not await service.end_for_owner(session_id, request.user.id):
            emit_security_event(
                request, "authz_fail", user_id=request.user.id, outcome="failure", target="session"
            )
            raise NotFoundException()
        await db_session.commit()
        emit_security_event(request, "session_revoked", user_id=request.user.id)
        if session_id == request.auth.id:  # ending this very session is signing out here
            cookie = expired_cookie(session_cookie_name(state.settings), https=state.settings.https)
            return redirect(
                request, "/login", flash=("info", "You have been signed out."), cookies=[cookie]
            )
        return redirect(request, SESSIONS_PATH, flash=("success", "The session was ended."))

    @post("/end-others", name="sessions.end_others", guards=[recent_password])
    async def end_others(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Redirect:
        """Sign out everywhere else: end every session of yours but this one."""
        service = SessionService(db_session, state.settings)
        ended = await service.end_all_for_user(request.user.id, except_id=request.auth.id)
        await db_session.commit()
        emit_security_event(request, "session_revoked_all", user_id=request.user.id, ended=ended)
        message = f"Signed out of {ended} other session{'s' if ended != 1 else ''}."
        return redirect(request, SESSIONS_PATH, flash=("success", message))
