"""Mailed one-time tokens: issue, check and consume (SECURITY.md S33, S34, S37; R3).

- 256-bit tokens from :mod:`secrets` (``token_urlsafe(32)``: 43 URL-safe characters); the
  database keeps only their SHA-256 (S33).
- Lifetimes: email verification 24 hours, password reset 60 minutes, email change 24 hours,
  undoing an email change (the link sent to the old address) 7 days.
  A link is valid at its expiry instant and refused one second later (S34).
- Single use: consumed by one conditional ``UPDATE`` whose row count decides the winner (R3).
- Superseded: issuing a token deletes the user's older ones of the same kind (S33), except an
  undo link of an email change: a second change must not take the first address's remedy away.
- A verification or reset link is valid only while the account's email is still the address
  it was sent to: changing the email kills it (S37).

:class:`TokenRefused` tells why a token cannot be used: ``invalid`` (malformed, unknown,
superseded, another kind's or another account's: answered 404) or ``used`` / ``expired`` /
``stale`` (the address changed): answered 410 Gone.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth.models import EmailToken, TokenKind
from features.core.auth.repository import EmailTokenRepository
from features.users.service import UserService
from shared import clock
from shared.security.tokens import new_token, token_hash

TOKEN_BYTES = 32  # 256 bits (S33)
_WELL_FORMED = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)

LIFETIMES: dict[TokenKind, timedelta] = {
    TokenKind.VERIFY_EMAIL: timedelta(hours=24),  # S34
    TokenKind.RESET_PASSWORD: timedelta(minutes=60),  # S34
    TokenKind.CHANGE_EMAIL: timedelta(hours=24),
    TokenKind.REVERT_EMAIL: timedelta(days=7),
}
# Kinds whose link must still match the account's current address (S37).
_BOUND_TO_CURRENT_EMAIL = frozenset({TokenKind.VERIFY_EMAIL, TokenKind.RESET_PASSWORD})

Reason = Literal["invalid", "used", "expired", "stale"]


class TokenRefused(Exception):
    """A token that cannot be used, and why (``reason``); ``status`` is the HTTP answer."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason

    @property
    def status(self) -> int:
        """404 for an invalid link, 410 Gone for one that was valid once."""
        return 404 if self.reason == "invalid" else 410


def well_formed(raw: str) -> bool:
    """True when ``raw`` has the shape of a token this module issues (43 URL-safe characters)."""
    return bool(_WELL_FORMED.match(raw or ""))


class EmailTokens:
    """Tokens through the request's session; flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.tokens = EmailTokenRepository(session)
        self.users = UserService(session)

    async def issue(
        self, user_id: uuid.UUID, kind: TokenKind, email: str, *, supersede: bool = True
    ) -> str:
        """A new token of ``kind`` for ``user_id``, sent to ``email``; returns the raw token.

        The user's older tokens of ``kind`` are deleted (superseded, S33) unless ``supersede``
        is False (undo links of email changes: one per changed-away address).
        """
        if supersede:
            await self.tokens.delete_kind_for_user(user_id, kind)
        raw = new_token(TOKEN_BYTES)
        now = clock.now()
        await self.tokens.add(
            EmailToken(
                user_id=user_id,
                kind=kind,
                token_hash=token_hash(raw),
                email=email,
                created_at=now,
                expires_at=now + LIFETIMES[kind],
            )
        )
        return raw

    async def check(self, raw: str, kind: TokenKind) -> EmailToken:
        """The live token ``raw`` of ``kind`` (nothing is changed). Raises :class:`TokenRefused`."""
        row = await self.tokens.by_hash(kind, token_hash(raw)) if well_formed(raw) else None
        if row is None:
            raise TokenRefused("invalid")
        if row.used_at is not None:
            raise TokenRefused("used")
        if clock.now() > row.expires_at:
            raise TokenRefused("expired")
        if kind in _BOUND_TO_CURRENT_EMAIL:
            user = await self.users.get(row.user_id)
            if user is None or user.email != row.email:
                raise TokenRefused("stale")
        return row

    async def consume(self, raw: str, kind: TokenKind) -> EmailToken:
        """Use the token ``raw`` of ``kind`` once (one conditional UPDATE, R3); returns its row.

        Raises :class:`TokenRefused` when it is not live, or when a concurrent request used it
        first (``used``).
        """
        row = await self.check(raw, kind)
        won = await self.tokens.mark_used(
            row.id, clock.now(), email_must_match=kind in _BOUND_TO_CURRENT_EMAIL
        )
        if not won:
            await self.check(raw, kind)  # says why (expired meanwhile, address changed …)
            raise TokenRefused("used")
        return row

    async def discard(self, user_id: uuid.UUID, *kinds: TokenKind) -> None:
        """Delete the user's tokens of ``kinds``, or of every kind when none is given (links
        that must die, e.g. after a change)."""
        await self.tokens.delete_for_user(user_id, *kinds)
