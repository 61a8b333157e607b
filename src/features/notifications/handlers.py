"""Notification pages, actions and the live stream (HTTP only)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from features.notifications.bell import STATE_KEY as BELL_LISTS
from features.notifications.live import CLOSE, Hub, LiveNotification, SeenIds
from features.notifications.schemas import FILTERS, PER_PAGE, parse_id, parse_query
from features.notifications.service import NotificationNotFound, NotificationService
from shared import clock
from shared.database.dependencies import request_reader
from shared.database.repository import PageOutOfRange
from shared.web.forms import read_form
from shared.web.render import page, redirect, safe_next

NOT_FOUND = "That notification does not exist."
HEARTBEAT_SECONDS = 15.0
STREAM_MAX_SECONDS = 300.0  # then the browser reconnects, and the session is checked again
RETRY_MS = 2000
RESUME_LIMIT = 50


def _id(raw: str) -> uuid.UUID:
    notification_id = parse_id(raw)
    if notification_id is None:
        raise NotFoundException(NOT_FOUND)
    return notification_id


def _back(data: dict[str, str]) -> str:
    return safe_next(data.get("return_to"), "/notifications")


async def _events(
    request: Request, user_id: uuid.UUID, after: uuid.UUID | None, resume: bool
) -> AsyncIterator[ServerSentEventMessage]:
    """The stream of one tab. ``after``: the newest notification the tab already has (the
    page's, or the last one sent before a reconnect); with ``resume`` the rows newer than it
    are replayed first. Then every item the hub delivers that this tab has not seen yet.
    """
    hub: Hub = request.app.state.notification_hub
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_MAX_SECONDS
    seen = SeenIds(hub)
    async with hub.subscribe(user_id) as queue:  # subscribe first: nothing slips between
        yield ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS)
        if after is not None:
            async with request.app.state.db.reader() as session:
                notifications = NotificationService(session).notifications
                # What the tab already has and the hub may still deliver (recent rows).
                for shown in await notifications.ids_between(user_id, hub.window_floor(), after):
                    seen.add(shown)
                missed = await notifications.after(user_id, after, RESUME_LIMIT) if resume else []
            for notification, unread in missed:
                yield _message(
                    LiveNotification(
                        id=notification.id,
                        user_id=user_id,
                        type=notification.type.value,
                        title=notification.title,
                        message=notification.message,
                        link=notification.link,
                        created_at=notification.created_at,
                        unread=unread,
                    )
                )
                seen.add(notification.id)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                item = await asyncio.wait_for(queue.get(), min(HEARTBEAT_SECONDS, remaining))
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="ping")
                continue
            if item is CLOSE:
                return
            if item.id in seen:
                continue  # already on the page, replayed above, or sent before
            yield _message(item)
            seen.add(item.id)


def _message(item: LiveNotification) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        id=str(item.id), event="notification", data=json.dumps(item.as_json())
    )


class NotificationController(Controller):
    """``/notifications``: the list, its actions and the live stream. Signed-in users only."""

    path = "/notifications"

    @get("/", name="notifications.index")
    async def index(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        """All notifications, newest first, paginated; ``filter=unread`` shows unread ones.

        An unknown filter → 422 with the default list; a bad or past-the-end page → 404.
        """
        query, errors, page_invalid = parse_query(dict(request.query_params))
        if page_invalid:
            raise NotFoundException("That page does not exist.")
        service = NotificationService(db_session)
        try:
            results = await service.list(
                request.user.id, unread_only=query.unread_only, page=query.page, per_page=PER_PAGE
            )
        except PageOutOfRange:
            raise NotFoundException("That page does not exist.") from None
        context = {
            "notifications": results,
            "query": query,
            "filters": FILTERS,
            "errors": errors,
            "here": query.url(),
            "query_url": query.url,
        }
        return page(
            request, "notifications/index.html", context, status_code=422 if errors else 200
        )

    @get("/stream", name="notifications.stream")
    async def stream(self, request: Request) -> ServerSentEvent:
        """Server-Sent Events: one ``notification`` event per new notification of the user
        (``id`` = the notification's id, ``data`` = JSON with ``unread``), a ``: ping`` comment
        every 15 s. ``Last-Event-ID`` (sent by the browser on reconnect; ``?last_event_id=``
        when the page's script reconnects after a back-off) replays what was missed; ``?after=<id>`` skips what the page already shows. Ends after 5 minutes or
        at shutdown; the browser reconnects.
        """
        last_event_id = parse_id(
            request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        )
        after = last_event_id or parse_id(request.query_params.get("after"))
        return ServerSentEvent(
            _events(request, request.user.id, after, resume=last_event_id is not None),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @post("/{notification_id:str}/read", name="notifications.read")
    async def mark_read(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        notification_id: FromPath[str],
    ) -> Redirect:
        """Mark one owned notification read (303) or answer 404."""
        data = await read_form(request)
        try:
            await NotificationService(db_session).mark_read(request.user.id, _id(notification_id))
        except NotificationNotFound:
            raise NotFoundException(NOT_FOUND) from None
        return redirect(request, _back(data))

    @post("/read-all", name="notifications.read_all")
    async def mark_all_read(
        self, request: Request, db_session: NamedDependency[AsyncSession]
    ) -> Redirect:
        """Mark every unread notification of the user read (303)."""
        data = await read_form(request)
        count = await NotificationService(db_session).mark_all_read(request.user.id)
        message = f"Marked {count} {'notification' if count == 1 else 'notifications'} as read."
        return redirect(request, _back(data), flash=("success", message))

    @post("/{notification_id:str}/delete", name="notifications.delete")
    async def delete(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        notification_id: FromPath[str],
    ) -> Redirect:
        """Delete one owned notification (303) or answer 404."""
        data = await read_form(request)
        try:
            await NotificationService(db_session).delete(request.user.id, _id(notification_id))
        except NotificationNotFound:
            raise NotFoundException(NOT_FOUND) from None
        return redirect(request, _back(data), flash=("success", "Notification deleted."))

    @post("/delete-read", name="notifications.delete_read")
    async def delete_read(
        self, request: Request, db_session: NamedDependency[AsyncSession]
    ) -> Redirect:
        """Delete every read notification of the user (303)."""
        data = await read_form(request)
        count = await NotificationService(db_session).delete_read(request.user.id)
        message = f"Deleted {count} read {'notification' if count == 1 else 'notifications'}."
        return redirect(request, _back(data), flash=("success", message))


async def bell_context(request: Request) -> dict[str, Any]:
    """Layout context for the navigation bell of a signed-in user: ``notification_bell``
    (unread count and the 10 newest) and ``notification_bell_list`` (those as HTML, from
    :class:`~features.notifications.bell.RenderedBellLists`; empty without any).

    One query: in the request's own open transaction when it has one
    (:func:`request_reader`), else on a short-lived reader session.
    """
    user = request.scope.get("user")
    if user is None or not user.verified:  # the layout shows no bell before verification
        return {}
    shared = request_reader(request.scope)  # the page's own read transaction, if it has one
    if shared is not None:
        bell = await NotificationService(shared).bell(user.id)
    else:
        async with request.app.state.db.reader() as session:
            bell = await NotificationService(session).bell(user.id)
    html: Markup | str = ""
    if bell.recent:
        html = request.app.state[BELL_LISTS].render(bell.recent, clock.now())
    return {"notification_bell": bell, "notification_bell_list": html}
