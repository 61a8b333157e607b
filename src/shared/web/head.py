"""HEAD wherever GET works (RFC 9110 §9.3.2), for every route at once.

Litestar routes only the methods a handler declares, and a ``@get`` handler does not declare
HEAD, so ``curl -I /login`` answered 405. :class:`HeadAsGet` wraps the whole application: a HEAD
request runs through the app as a GET (the same guards, session, headers and status, so HEAD
changes no more than GET does: nothing, SECURITY.md S24) and the client receives the response's
status and headers without the body. Paths without a GET route still answer 405 (or 404).

A streamed GET response (Server-Sent Events) is cut off after its headers: the app's next
``receive()`` reports the client gone, which ends the stream.
"""

from __future__ import annotations

import asyncio

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}


class HeadAsGet:
    """ASGI wrapper: answer ``HEAD`` like ``GET``, without a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = asyncio.Event()

        async def receive_until_done() -> Message:
            if done.is_set():
                return _DISCONNECT
            incoming = asyncio.ensure_future(receive())
            finished = asyncio.ensure_future(done.wait())
            await asyncio.wait({incoming, finished}, return_when=asyncio.FIRST_COMPLETED)
            if incoming.done():
                finished.cancel()
                return incoming.result()
            incoming.cancel()
            return _DISCONNECT

        async def send_without_body(message: Message) -> None:
            if done.is_set():
                return
            if message["type"] == "http.response.body":
                done.set()  # the first body part ends the response: headers only
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        scope["method"] = "GET"  # in place, so wrappers outside (the access log) see the user
        try:
            await self.app(scope, receive_until_done, send_without_body)
        finally:
            scope["method"] = "HEAD"
