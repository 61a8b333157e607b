"""Encryption of secrets at rest (SECURITY.md S25): Fernet (AES-128-CBC + HMAC-SHA256) with
key rotation through :class:`cryptography.fernet.MultiFernet`.

Keys come from outside the database: ``ENCRYPTION_KEY`` (one or more comma-separated keys,
newest first) or, when it is empty, ``SECRET_KEY``. Every configured key string is stretched
into a Fernet key with HKDF-SHA256 (RFC 5869), so any long random string works as a key.
The key derived from ``SECRET_KEY`` is always kept last for decryption only, so values written
before ``ENCRYPTION_KEY`` was introduced still decrypt; :meth:`SecretBox.rotate` re-encrypts a
value under the newest key.

``cryptography`` is imported on first use: a worker whose users never touch two-factor
authentication does not hold its modules (about 6 MiB).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["DecryptionError", "SecretBox", "derive_fernet_key"]


class DecryptionError(Exception):
    """The ciphertext was not made by any configured key, or was altered."""


def derive_fernet_key(key: str, purpose: str) -> bytes:
    """Return a Fernet key (32 bytes, base64url) derived from ``key`` for ``purpose``.

    HKDF-SHA256 without salt (the input is already a high-entropy secret), ``info`` = purpose,
    so one configured key gives independent keys for independent uses.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return base64.urlsafe_b64encode(hkdf.derive(key.encode()))


class SecretBox:
    """Encrypt and decrypt short text secrets with rotating keys.

    ``keys`` newest first: the first encrypts, all decrypt. ``fallback`` (usually
    ``SECRET_KEY``) is appended as the last decrypt key. Raises ``ValueError`` without any key.
    """

    def __init__(self, keys: list[str], *, fallback: str = "", purpose: str) -> None:
        materials = [k for k in keys if k] + ([fallback] if fallback else [])
        if not materials:
            raise ValueError("SecretBox needs at least one key")
        self._materials = list(dict.fromkeys(materials))  # without repeats, order kept
        self._purpose = purpose
        self._multi: MultiFernet | None = None

    @property
    def _fernet(self) -> MultiFernet:
        if self._multi is None:
            from cryptography.fernet import Fernet, MultiFernet

            self._multi = MultiFernet(
                [Fernet(derive_fernet_key(k, self._purpose)) for k in self._materials]
            )
        return self._multi

    @classmethod
    def from_settings(cls, encryption_key: str, secret_key: str, purpose: str) -> SecretBox:
        """Build from the ``ENCRYPTION_KEY`` (comma-separated, newest first) and ``SECRET_KEY``."""
        keys = [k.strip() for k in encryption_key.split(",") if k.strip()]
        return cls(keys, fallback=secret_key, purpose=purpose)

    def encrypt(self, plaintext: str) -> str:
        """Return the Fernet token (ASCII text) of ``plaintext`` under the newest key."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plaintext of ``token``. Raises :class:`DecryptionError` if no key fits."""
        fernet = self._fernet
        from cryptography.fernet import InvalidToken

        try:
            return fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise DecryptionError("cannot decrypt with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Return ``token`` re-encrypted under the newest key. Raises :class:`DecryptionError`."""
        fernet = self._fernet
        from cryptography.fernet import InvalidToken

        try:
            return fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise DecryptionError("cannot decrypt with the configured keys") from exc
