"""The mailer features use: render a feature's mail templates, build the message, queue it.

Templates live in the sending feature (``<feature>/templates/<feature>/mail/<name>.txt`` and
``.html``) and extend ``mail/layout.txt`` / ``mail/layout.html`` from the shared layout. They
get ``app_name`` and ``app_url`` plus the caller's context. Links are made with :meth:`Mailer.link`
from ``APP_URL`` only, never from a request's Host header (SECURITY.md S37).

Call :meth:`Mailer.send` after the database commit: it queues and returns at once, and it never
raises (a broken address or template is logged and reported as ``False``), so sending mail can
never turn a finished action into an error page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from shared.config import Settings
from shared.mail.message import address, build_message, parse_sender
from shared.mail.queue import MailQueue
from shared.mail.transport import Transport, transport_for
from shared.web import templating

logger = logging.getLogger("slicestar.mail")


class Mailer:
    """One per process (``app.state.mail``). :meth:`start`/:meth:`stop` run in the app's lifespan.

    Raises :class:`shared.mail.MailAddressError` at construction when ``MAIL_FROM`` is not one
    valid address.
    """

    def __init__(self, settings: Settings, template_dirs: Sequence[Path]) -> None:
        self.settings = settings
        self.sender = parse_sender(settings.mail_from)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in template_dirs]),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        # The same filters as pages (datetime_utc, …).
        templating.configure(self.templates, reload=settings.app_env == "development")
        self.queue: MailQueue | None = None
        self.transport: Transport | None = None

    def link(self, path: str) -> str:
        """The absolute URL of the local ``path`` (must start with ``/``) under ``APP_URL`` (S37)."""
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError("link paths are local and start with a single /")
        return self.settings.app_url.rstrip("/") + path

    async def start(self, transport: Transport | None = None, **queue_options: Any) -> None:
        """Pick the transport (``MAIL_URL``) and start delivering.

        Raises :class:`shared.mail.MailConfigError` for a bad ``MAIL_URL`` or none in production.
        """
        self.transport = transport or transport_for(self.settings)
        options: dict[str, Any] = {
            "attempts": self.settings.mail_retry_attempts,
            "base_delay": self.settings.mail_retry_base_seconds,
            "send_timeout": self.settings.mail_timeout_seconds * 3,
        }
        options.update(queue_options)
        self.queue = MailQueue(self.transport, **options)
        await self.queue.start()
        logger.info("mail goes to the %s", self.transport.describe())

    async def stop(self) -> None:
        """Give pending mail its bounded time, then stop the worker."""
        if self.queue is not None:
            await self.queue.stop()
            self.queue = None

    async def join(self, poll_seconds: float = 0.01) -> None:
        """Wait until the queue is empty (every message delivered or given up). Works from any
        event loop (a test client may run the app in another one), by polling."""
        # Polling, not an Event: an asyncio.Event belongs to the loop that runs the queue.
        while self.queue is not None and self.queue.pending:  # noqa: ASYNC110
            await asyncio.sleep(poll_seconds)

    def render(self, template: str, context: dict[str, Any]) -> tuple[str, str]:
        """``(text, html)`` of ``template`` (a path without extension, e.g. ``auth/mail/verify``)."""
        full = {"app_name": self.settings.app_name, "app_url": self.settings.app_url, **context}
        text = self.templates.get_template(f"{template}.txt").render(full)
        html = self.templates.get_template(f"{template}.html").render(full)
        return text, html

    def send(
        self,
        *,
        to: str,
        name: str = "",
        subject: str,
        template: str,
        context: dict[str, Any] | None = None,
    ) -> bool:
        """Render ``template`` and queue the mail to ``name <to>``; True when queued.

        ``subject`` is prefixed with the product name. Returns False (and logs why, without
        the address or the body) when the address, name or subject is refused
        (:class:`shared.mail.MailAddressError`), a template fails, or the mailer is not running.
        """
        kind = template.rsplit("/", 1)[-1]
        if self.queue is None:
            logger.error("mail %s not sent: the mailer is not running", kind)
            return False
        try:
            text, html = self.render(template, context or {})
            message = build_message(
                sender=self.sender,
                to=address(to, name),
                subject=f"{self.settings.app_name}: {subject}",
                text=text,
                html=html,
            )
        except Exception as exc:
            logger.error("mail %s not sent: %s", kind, type(exc).__name__, exc_info=True)
            return False
        self.queue.put(message, kind)
        return True
