"""Email address rules: only addresses the mail transport can reach are accepted, and they are
stored in one ASCII form (RFC 5890 IDNA domains; no SMTPUTF8 local parts, RFC 6531)."""

from __future__ import annotations

import pytest

from features.users.service import NON_ASCII_LOCAL_PART, email_error, normalise_email


@pytest.mark.parametrize(
    "raw, stored",
    [
        (" Ann@Example.com ", "ann@example.com"),
        ("ann@bücher.example", "ann@xn--bcher-kva.example"),
        ("Ann@BÜCHER.Example", "ann@xn--bcher-kva.example"),
        ("ann@xn--bcher-kva.example", "ann@xn--bcher-kva.example"),
        ("ann@例え.テスト", "ann@xn--r8jz45g.xn--zckzah"),
    ],
)
def test_valid_addresses_are_stored_lower_case_with_an_ascii_domain(raw, stored):
    assert email_error(raw.strip()) is None
    assert normalise_email(raw) == stored
    assert stored.isascii()


@pytest.mark.parametrize("raw", ["jörg@example.com", "山田@example.com", "ñ@bücher.example"])
def test_a_non_ascii_local_part_is_refused_with_its_own_message(raw):
    assert email_error(raw) == NON_ASCII_LOCAL_PART


@pytest.mark.parametrize("raw", ["not-an-email", "ann@", '"Ann" <ann@example.com>', "a@b@c.org"])
def test_malformed_addresses_get_the_general_message(raw):
    assert email_error(raw) == "Enter a valid email address, like name@example.com."


def test_normalising_never_raises_on_garbage():
    assert normalise_email("  Not An Address ") == "not an address"
    assert (
        normalise_email("JÖRG@example.com") == "jörg@example.com"
    )  # finds nothing, refuses nothing
