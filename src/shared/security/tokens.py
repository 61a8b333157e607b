"""Random tokens and their stored hashes (SECURITY.md S10, S33)."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    """Return a URL-safe random token of ``nbytes`` bytes from :mod:`secrets` (default 256 bits)."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """Return the SHA-256 hex digest of ``token``: what the database stores instead of it."""
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_digest(key: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, separated by ``purpose``; hex text."""
    return hmac.new(key.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def equal(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
