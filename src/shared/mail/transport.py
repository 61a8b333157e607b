"""Where mail goes: an SMTP server (``aiosmtplib``) or an outbox folder of ``.eml`` files.

``MAIL_URL`` decides (README "Mail"):

- ``smtp://user:password@host:port`` — SMTP; STARTTLS when the server offers it (for a relay on
  a trusted network; default port 25);
- ``smtp+starttls://user:password@host:587`` — STARTTLS required (refuses to send in clear);
- ``smtps://user:password@host:465`` — TLS from the first byte (implicit TLS, RFC 8314);
- ``file:///absolute/folder`` — write every message as an ``.eml`` file into that folder;
- empty — development and test: the outbox folder ``MAIL_OUTBOX_DIR`` (default ``db/mail``);
  production refuses to start (:class:`MailConfigError`): password resets and email
  verification cannot work without mail, so a deployment must choose SMTP or, deliberately,
  ``file://``.

User name and password are percent-decoded (``%40`` for ``@``). Certificates are always verified.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from shared.config import Settings

TLSMode = Literal["opportunistic", "starttls", "implicit"]
_SCHEMES: dict[str, tuple[TLSMode, int]] = {
    "smtp": ("opportunistic", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("implicit", 465),
}


class MailConfigError(RuntimeError):
    """``MAIL_URL`` is malformed, or missing where mail must really be sent (production)."""


class Transport(Protocol):
    """Delivers one message or raises. ``describe()`` names the destination without secrets."""

    async def send(self, message: EmailMessage) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SMTPTransport:
    """Send through an SMTP server, one connection per message (``aiosmtplib.send``).

    ``timeout`` (seconds) bounds connecting and each SMTP command. ``local_hostname`` is what
    the client says in ``EHLO``.
    """

    host: str
    port: int
    username: str | None
    password: str | None
    tls: TLSMode
    timeout: float
    local_hostname: str = "localhost"

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.tls == "implicit",
            start_tls={"opportunistic": None, "starttls": True, "implicit": False}[self.tls],
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )

    def describe(self) -> str:
        return f"SMTP {self.host}:{self.port} ({self.tls} TLS)"


@dataclass(frozen=True, slots=True)
class OutboxTransport:
    """Write each message to ``directory/<ns since the epoch>-<random>.eml`` (mode 0600: links
    carry tokens); names sort in the order the messages were written (wall clock, not the
    application clock, which tests may freeze).

    The file appears whole or not at all (written beside it, then renamed).
    """

    directory: Path

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message.as_bytes())

    def _write(self, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}.eml"
        partial = self.directory / f".{name}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(partial, self.directory / name)

    def describe(self) -> str:
        return f"outbox folder {self.directory}"


def _ehlo_name(app_url: str) -> str:
    host = urlsplit(app_url).hostname or "localhost"
    return host if any(c.isalpha() for c in host) else f"[{host}]"


def outbox_folder(settings: Settings) -> Path | None:
    """The folder mail is written to, or ``None`` when it goes to an SMTP server (or nowhere)."""
    url = settings.mail_url.strip()
    if not url:
        return None if settings.app_env == "production" else Path(settings.mail_outbox_dir)
    parts = urlsplit(url)
    if parts.scheme.lower() == "file" and parts.path.startswith("/"):
        return Path(unquote(parts.path))
    return None


def transport_for(settings: Settings) -> Transport:
    """The transport ``settings.mail_url`` names (see the module docstring).

    Raises :class:`MailConfigError` for an unknown scheme, a missing host, a relative ``file:``
    path, or an empty ``MAIL_URL`` in production.
    """
    url = settings.mail_url.strip()
    if not url:
        if settings.app_env == "production":
            raise MailConfigError(
                "MAIL_URL is required in production (smtp://, smtp+starttls://, smtps:// or, "
                "to keep mail in a folder on purpose, file:///path): password resets and email "
                "verification cannot work without mail"
            )
        return OutboxTransport(Path(settings.mail_outbox_dir))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise MailConfigError(
                "MAIL_URL file: needs an absolute folder, like file:///app/db/mail"
            )
        return OutboxTransport(Path(unquote(parts.path)))
    if scheme not in _SCHEMES:
        raise MailConfigError(
            f"MAIL_URL scheme {scheme!r} is not one of smtp, smtp+starttls, smtps, file"
        )
    tls, default_port = _SCHEMES[scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise MailConfigError("MAIL_URL has an invalid port") from exc
    if not parts.hostname:
        raise MailConfigError(
            "MAIL_URL needs a host, like smtp://user:password@mail.example.com:587"
        )
    return SMTPTransport(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
        timeout=settings.mail_timeout_seconds,
        local_hostname=_ehlo_name(settings.app_url),
    )
