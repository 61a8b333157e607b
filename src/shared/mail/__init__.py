"""Mail: messages (stdlib ``email``), transports (SMTP via ``aiosmtplib``, or an outbox folder),
an in-process delivery queue with retries, and the :class:`Mailer` features call.

README "Mail" describes ``MAIL_URL``, the outbox and the development page ``/dev/mail``.
"""

from shared.mail.mailer import Mailer
from shared.mail.message import (
    MailAddressError,
    address,
    build_message,
    parse_sender,
    unsafe_in_header,
)
from shared.mail.outbox import OutboxMessage, read_outbox
from shared.mail.queue import MailQueue
from shared.mail.transport import (
    MailConfigError,
    OutboxTransport,
    SMTPTransport,
    Transport,
    outbox_folder,
    transport_for,
)

__all__ = [
    "MailAddressError",
    "MailConfigError",
    "MailQueue",
    "Mailer",
    "OutboxMessage",
    "OutboxTransport",
    "SMTPTransport",
    "Transport",
    "address",
    "build_message",
    "outbox_folder",
    "parse_sender",
    "read_outbox",
    "transport_for",
    "unsafe_in_header",
]
