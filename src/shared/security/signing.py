"""Signed values for cookies that carry guest state (flash messages, CSRF secret).

Format: ``<base64url payload>.<base64url HMAC-SHA256>``. The payload is JSON; it is
readable by the client but cannot be changed without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Sign and verify JSON values with ``key``; ``purpose`` separates uses of one key."""

    def __init__(self, key: str, purpose: str) -> None:
        self._key = hashlib.sha256(f"{purpose}:{key}".encode()).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def sign(self, value: Any) -> str:
        """Return the signed text form of the JSON-serialisable ``value``."""
        payload = _b64(json.dumps(value, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def unsign(self, text: str | None) -> Any | None:
        """Return the value inside ``text``, or ``None`` if it is missing, malformed or forged."""
        if not text or "." not in text:
            return None
        payload, mac = text.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            return json.loads(_unb64(payload))
        except ValueError:
            return None
