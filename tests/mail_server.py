"""A real SMTP server on 127.0.0.1 for tests (``aiosmtpd``), recording what it receives.

aiosmtpd's stock ``Controller`` refuses ``port=0`` and defaults to ``::1`` on this machine, so
the server binds ``127.0.0.1`` on a free port picked first (DESIGN.md §9).
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the server got it: envelope sender and recipients, parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()


class Recorder:
    """aiosmtpd handler that keeps every message (thread-safe)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.auth_data else None
        with self._lock:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, login)
            )
        return "250 Message accepted for delivery"

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 5
    ) -> list[Received]:
        """Poll until ``predicate(messages)`` holds; returns the messages (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                snapshot = list(self.messages)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(f"SMTP server got {len(snapshot)} message(s)")
            time.sleep(0.02)

    def to(self, address: str) -> list[Received]:
        """Messages whose envelope names ``address``, oldest first."""
        with self._lock:
            return [m for m in self.messages if address in m.rcpt_tos]


@contextmanager
def smtp_server(*, credentials: tuple[str, str] | None = None) -> Iterator[tuple[Recorder, int]]:
    """Run an SMTP server on 127.0.0.1; yields ``(recorder, port)``. With ``credentials`` the
    server requires AUTH with that user name and password (allowed without TLS, for the test)."""
    recorder = Recorder()
    port = free_port()
    options: dict[str, Any] = {}
    if credentials is not None:

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and (data.login.decode(), data.password.decode()) == credentials
            )
            return AuthResult(success=ok, handled=False, auth_data=data)

        options = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()
