"""Secrets at rest (SECURITY.md S25): Fernet with rotating keys from outside the database."""

from __future__ import annotations

import pytest

from shared.security.encryption import DecryptionError, SecretBox

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_s25_ciphertext_hides_the_secret_and_round_trips():
    box = SecretBox.from_settings("", "a-secret-key-" + "x" * 30, "two-factor-secret")
    token = box.encrypt(SECRET)
    assert SECRET not in token and token != box.encrypt(SECRET)  # random IV per value
    assert box.decrypt(token) == SECRET


def test_s25_another_key_or_purpose_cannot_decrypt_and_tampering_is_detected():
    token = SecretBox(["key-one-" + "a" * 32], purpose="p").encrypt(SECRET)
    for other in (
        SecretBox(["key-two-" + "b" * 32], purpose="p"),
        SecretBox(["key-one-" + "a" * 32], purpose="q"),
    ):
        with pytest.raises(DecryptionError):
            other.decrypt(token)
    box = SecretBox(["key-one-" + "a" * 32], purpose="p")
    with pytest.raises(DecryptionError):
        box.decrypt(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    with pytest.raises(DecryptionError):
        box.decrypt("not a token ✓")


def test_s25_encryption_key_rotates_and_secret_key_values_still_decrypt():
    secret_key = "the-secret-key-" + "s" * 30
    old = SecretBox.from_settings("", secret_key, "p").encrypt(SECRET)  # before ENCRYPTION_KEY
    first = SecretBox.from_settings("first-" + "f" * 32, secret_key, "p")
    assert first.decrypt(old) == SECRET
    by_first = first.encrypt(SECRET)
    rotated = SecretBox.from_settings("second-" + "n" * 32 + ", first-" + "f" * 32, secret_key, "p")
    assert rotated.decrypt(by_first) == SECRET
    fresh = rotated.rotate(by_first)
    only_new = SecretBox(["second-" + "n" * 32], purpose="p")
    assert only_new.decrypt(fresh) == SECRET
    with pytest.raises(DecryptionError):
        only_new.decrypt(by_first)


def test_a_box_without_keys_is_refused():
    with pytest.raises(ValueError):
        SecretBox([], purpose="p")


def test_s25_short_encryption_keys_are_refused():
    from pydantic import ValidationError

    from shared.config import Settings

    with pytest.raises(ValidationError, match="ENCRYPTION_KEY"):
        Settings(app_env="test", secret_key="k" * 40, encryption_key="short")
    with pytest.raises(ValidationError, match="ENCRYPTION_KEY"):
        Settings(app_env="test", secret_key="k" * 40, encryption_key="n" * 40 + ",short")
    settings = Settings(
        app_env="test", secret_key="k" * 40, encryption_key="n" * 40 + ", " + "o" * 32
    )
    assert SecretBox.from_settings(settings.encryption_key, settings.secret_key, "p")
