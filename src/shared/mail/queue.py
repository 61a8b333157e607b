"""The per-process delivery queue: mail leaves after the request, retried with back-off.

Why in memory: a message carries a raw one-time token in its body (a verification or reset
link). Persisting the queue would put those tokens in the database or on disk in plain text,
where a backup or a read-only leak would expose them; the database keeps only their SHA-256
(SECURITY.md S33). The price is that mail still queued when a worker dies is lost; the person
asks again (every mail-sending flow has a "send again" path), and a clean shutdown gives the
queue a bounded time to empty.

Rules: :meth:`MailQueue.put` never blocks and never raises into a request. The worker sends one
message at a time; a failure is logged (kind, Message-ID, recipient domain, error class — never
the body or link) and retried after ``base_delay × 2^(attempt-1)`` seconds, at most
``attempts`` tries in all. On :meth:`MailQueue.stop` retries waiting for their time are brought
forward and everything pending gets ``shutdown_seconds`` to go out; what is left is counted in
the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from email.message import EmailMessage

from shared.mail.transport import Transport

logger = logging.getLogger("slicestar.mail")


@dataclass(slots=True)
class Outgoing:
    """One message on its way; ``kind`` names it in logs (``verify_email``, ``reset_password`` …)."""

    message: EmailMessage
    kind: str
    attempt: int = 0

    def label(self) -> str:
        """What the log may say about this message: kind, Message-ID, recipient domain."""
        to = str(self.message.get("To", ""))
        domain = to.rsplit("@", 1)[-1].rstrip(">") if "@" in to else "?"
        return f"{self.kind} {self.message.get('Message-ID', '')} to @{domain}"


class MailQueue:
    """An asyncio queue with one sending worker. Create, :meth:`start`, :meth:`put`, :meth:`stop`.

    ``attempts`` ≥ 1 tries per message; ``base_delay`` seconds before the first retry (doubling);
    ``send_timeout`` seconds at most per try (on top of the transport's own timeouts).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        attempts: int = 4,
        base_delay: float = 2.0,
        send_timeout: float = 30.0,
        shutdown_seconds: float = 10.0,
    ) -> None:
        self.transport = transport
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.send_timeout = send_timeout
        self.shutdown_seconds = shutdown_seconds
        self.sent = 0
        self.failed = 0
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._waiting: dict[asyncio.TimerHandle, Outgoing] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the worker (in the running event loop)."""
        self._worker = asyncio.create_task(self._run(), name="mail-queue")

    def put(self, message: EmailMessage, kind: str) -> None:
        """Queue ``message`` for delivery; returns at once."""
        self._pending += 1
        self._idle.clear()
        self._queue.put_nowait(Outgoing(message, kind))

    @property
    def pending(self) -> int:
        """Messages queued or waiting for a retry."""
        return self._pending

    async def join(self) -> None:
        """Wait until every queued message was delivered or given up (in the queue's loop)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Deliver what is pending within ``shutdown_seconds`` (one last try each), then stop."""
        self._closing = True
        for handle, outgoing in list(self._waiting.items()):
            handle.cancel()
            self._waiting.pop(handle)
            self._queue.put_nowait(outgoing)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=self.shutdown_seconds)
        except TimeoutError:
            logger.error("mail: %d message(s) not delivered before shutdown", self._pending)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def _done(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()

    def _requeue(self, handle_box: list[asyncio.TimerHandle], outgoing: Outgoing) -> None:
        self._waiting.pop(handle_box[0], None)
        self._queue.put_nowait(outgoing)

    async def _run(self) -> None:
        while True:
            outgoing = await self._queue.get()
            outgoing.attempt += 1
            try:
                await asyncio.wait_for(
                    self.transport.send(outgoing.message), timeout=self.send_timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(outgoing, exc)
            else:
                self.sent += 1
                logger.info("mail sent: %s via %s", outgoing.label(), self.transport.describe())
                self._done()

    def _failed(self, outgoing: Outgoing, exc: Exception) -> None:
        reason = type(exc).__name__
        code = getattr(exc, "code", None)
        if code is not None:
            reason += f" {code}"
        if outgoing.attempt >= self.attempts or self._closing:
            self.failed += 1
            logger.error(
                "mail given up: %s after %d attempt(s) (%s)",
                outgoing.label(),
                outgoing.attempt,
                reason,
            )
            self._done()
            return
        delay = self.base_delay * 2 ** (outgoing.attempt - 1)
        logger.warning(
            "mail attempt %d of %d failed: %s (%s); retrying in %.3g s",
            outgoing.attempt,
            self.attempts,
            outgoing.label(),
            reason,
            delay,
        )
        box: list[asyncio.TimerHandle] = []
        handle = asyncio.get_running_loop().call_later(delay, self._requeue, box, outgoing)
        box.append(handle)
        self._waiting[handle] = outgoing
