"""Building mail messages that cannot carry injected headers.

Every message is a stdlib :class:`email.message.EmailMessage` (``multipart/alternative`` with a
plain-text and an HTML part). Addresses go through :class:`email.headerregistry.Address`, so a
display name is quoted, never parsed as further recipients; CR, LF and every other control
character (C0, DEL, C1) or line separator in a name, an address or a subject is refused with :class:`MailAddressError` before any header
is written (OWASP Email Validation and Verification; header injection, CWE-93).
"""

from __future__ import annotations

import email.policy
import unicodedata
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from shared import clock

MAX_ADDRESS = 254
MAX_NAME = 200
MAX_SUBJECT = 200


class MailAddressError(ValueError):
    """An address, display name or subject that must not go into a mail header."""


# Characters no header value may hold: every Unicode control character (category Cc: C0
# U+0000–U+001F, DEL U+007F, C1 U+0080–U+009F, which includes NEL U+0085), the Unicode line
# and paragraph separators, which some mail programs treat as line breaks, and lone surrogates
# (category Cs), which cannot be encoded at all.
_LINE_SEPARATORS = frozenset("\u2028\u2029")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def unsafe_in_header(value: str) -> bool:
    """True when ``value`` holds a character a mail header must not carry: a control character
    (C0, DEL, C1), U+2028/U+2029 or a lone surrogate.

    The one rule for header text: the mailer refuses such a name, address or subject, and the
    display-name validation of the account forms uses the same function, so a name that passes
    the form can always be mailed (CWE-93).
    """
    return any(
        c in _LINE_SEPARATORS or unicodedata.category(c) in _REFUSED_CATEGORIES for c in value
    )


def _refuse_controls(value: str, what: str) -> None:
    if unsafe_in_header(value):
        raise MailAddressError(f"{what} contains a control character (CR, LF, …)")


def address(addr_spec: str, name: str = "") -> Address:
    """An ``Address`` for the bare ``addr_spec`` (``local@domain``) and an optional display name.

    Raises :class:`MailAddressError` for control characters anywhere, an over-long value, or an
    ``addr_spec`` that is not exactly one ``local@domain`` (no display name, no list, no comment).
    """
    _refuse_controls(addr_spec, "address")
    _refuse_controls(name, "display name")
    if len(addr_spec) > MAX_ADDRESS or len(name) > MAX_NAME:
        raise MailAddressError("address or display name too long")
    if addr_spec.count("@") != 1 or any(c in addr_spec for c in ' <>,;"()\\'):
        raise MailAddressError("not a single local@domain address")
    try:
        parsed = Address(display_name=name, addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise MailAddressError("not a single local@domain address") from exc
    if not parsed.username or not parsed.domain:
        raise MailAddressError("not a single local@domain address")
    return parsed


def parse_sender(value: str) -> Address:
    """The one ``Name <local@domain>`` (or bare address) of ``MAIL_FROM``.

    Raises :class:`MailAddressError` when ``value`` is not exactly one valid address.
    """
    _refuse_controls(value, "MAIL_FROM")
    header = HeaderRegistry()("from", value)
    if header.defects or len(header.addresses) != 1:
        raise MailAddressError(
            f"MAIL_FROM must be one address like 'Name <no-reply@host>': {value!r}"
        )
    found = header.addresses[0]
    return address(found.addr_spec, found.display_name)


def build_message(
    *, sender: Address, to: Address, subject: str, text: str, html: str
) -> EmailMessage:
    """A ``multipart/alternative`` message (plain text first, then HTML) from ``sender`` to ``to``.

    Sets ``Date`` (UTC, from :func:`shared.clock.now`), a ``Message-ID`` in the sender's domain
    and ``Auto-Submitted: auto-generated`` (RFC 3834, so auto-responders stay quiet). Raises
    :class:`MailAddressError` for a subject with control characters or over 200 characters.
    """
    _refuse_controls(subject, "subject")
    if len(subject) > MAX_SUBJECT:
        raise MailAddressError("subject too long")
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = make_msgid(domain=sender.domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
