"""Reading the outbox folder (``.eml`` files written by :class:`OutboxTransport`).

Used by the development page ``/dev/mail`` and by tests that follow a link from a mail.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One stored message: file name, headers, both parts and the links of its text part.
    ``written_ns`` is when the outbox wrote it (nanoseconds since the epoch, from the name)."""

    name: str
    sent_at: datetime | None
    sender: str
    to: str
    subject: str
    text: str
    html: str
    links: list[str]

    @property
    def written_ns(self) -> int:
        prefix = self.name.split("-", 1)[0]
        return int(prefix) if prefix.isdigit() else 0


def parse_message(name: str, data: bytes) -> OutboxMessage:
    """Parse one ``.eml`` file's bytes."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else ""
    try:
        sent_at = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        sent_at = None
    return OutboxMessage(
        name=name,
        sent_at=sent_at,
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        text=text,
        html=html,
        links=LINK.findall(text),
    )


def read_outbox(directory: Path, limit: int = 50) -> list[OutboxMessage]:
    """The newest ``limit`` messages in ``directory``, newest first (none if it does not exist)."""
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.eml"), key=lambda p: p.name, reverse=True)[:limit]
    return [parse_message(path.name, path.read_bytes()) for path in files]
