"""The display-name rule and the mailer agree: a name the account forms accept can always be
put in a mail header, and a name the mailer refuses never passes the forms (CWE-93)."""

from __future__ import annotations

import pytest

from features.users.service import name_error
from shared.mail import MailAddressError, address, build_message, parse_sender

SENDER = parse_sender("Slicestar <no-reply@slicestar.test>")
# Every C0 and C1 control character, DEL, the line separators, a lone surrogate and their
# neighbours, plus ordinary letters from several scripts.
PROBES = [
    *range(0x00, 0xA1),
    0x00AD,
    0x2027,
    0x2028,
    0x2029,
    0x202A,
    0xD7FF,
    0xD800,
    0xDBFF,
    0xDC00,
    0xDFFF,
    0xE000,
    0xFEFF,
    0x1F600,
    0x10FFFF,
]


def mailer_takes(name: str) -> bool:
    try:
        message = build_message(
            sender=SENDER,
            to=address("ann@example.com", name),
            subject="Hi",
            text="t",
            html="<p>h</p>",
        )
        message.as_bytes()
    except (MailAddressError, UnicodeError):
        return False
    return True


@pytest.mark.parametrize("code_point", PROBES, ids=lambda c: f"U+{c:04X}")
def test_the_name_rule_is_the_mailers_rule(code_point):
    name = f"Ann{chr(code_point)}Smith"
    assert (name_error(name) is None) == mailer_takes(name)


@pytest.mark.parametrize("char", ["\x7f", "\x80", "\x85", "\x9b", "\x9f", "\u2028", "\u2029"])
def test_del_c1_controls_and_line_separators_are_not_names(char):
    assert name_error(f"Ann{char}") == "A name cannot contain control characters."
    with pytest.raises(MailAddressError):
        address("ann@example.com", f"Ann{char}")


def test_ordinary_names_in_any_script_pass_and_are_mailed():
    for name in ("Zoë Ñúñez", "Łukasz Żółć", "山田 太郎", "Ann 🍕", "O'Brien-Smith"):
        assert name_error(name) is None
        assert mailer_takes(name)
