"""All SQL about mailed one-time tokens (``email_tokens``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update

from features.core.auth.models import EmailToken, TokenKind
from features.users.models import User
from shared.database import Repository


class EmailTokenRepository(Repository[EmailToken]):
    """Issue, find and consume tokens through the request's session (never commits)."""

    model = EmailToken

    async def delete_kind_for_user(self, user_id: uuid.UUID, kind: TokenKind) -> int:
        """Delete every token of ``kind`` of ``user_id`` (a newer one supersedes them)."""
        result = await self.session.execute(
            delete(EmailToken).where(EmailToken.user_id == user_id, EmailToken.kind == kind)
        )
        return result.rowcount or 0

    async def by_hash(self, kind: TokenKind, token_hash: str) -> EmailToken | None:
        """The token of ``kind`` whose SHA-256 is ``token_hash``, or ``None``."""
        return await self.session.scalar(
            select(EmailToken)
            .where(EmailToken.token_hash == token_hash, EmailToken.kind == kind)
            .execution_options(populate_existing=True)
        )

    async def mark_used(
        self, token_id: uuid.UUID, now: datetime, *, email_must_match: bool
    ) -> bool:
        """Consume one token: ``UPDATE … SET used_at = now WHERE id = … AND used_at IS NULL AND
        expires_at >= now`` (and, when ``email_must_match``, the user's current email is still the
        one the link was sent to). True only for the one caller whose update changed the row
        (SECURITY.md S33, R3: two racing requests cannot both win)."""
        stmt = update(EmailToken).where(
            EmailToken.id == token_id,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at >= now,
        )
        if email_must_match:
            current = select(User.email).where(User.id == EmailToken.user_id).scalar_subquery()
            stmt = stmt.where(EmailToken.email == current)
        result = await self.session.execute(
            stmt.values(used_at=now).execution_options(synchronize_session=False)
        )
        return (result.rowcount or 0) == 1

    async def delete_for_user(self, user_id: uuid.UUID, *kinds: TokenKind) -> int:
        """Delete the user's tokens of ``kinds`` (every kind when none is given)."""
        stmt = delete(EmailToken).where(EmailToken.user_id == user_id)
        if kinds:
            stmt = stmt.where(EmailToken.kind.in_(kinds))
        result = await self.session.execute(stmt)
        return result.rowcount or 0
