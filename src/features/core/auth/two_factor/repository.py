"""All SQL of two-factor authentication: the 2FA columns of ``users`` and the recovery codes.

One-shot values are consumed with a conditional ``UPDATE … WHERE …`` and a rowcount check, so
two racing requests cannot both win (DESIGN.md §3, SECURITY.md S28, S30).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update

from features.core.auth.two_factor.models import RecoveryCode
from features.users.models import User
from shared.database import Repository
from shared.database.types import new_id

_u = User.__table__
_r = RecoveryCode.__table__


class TwoFactorRepository(Repository[RecoveryCode]):
    """Two-factor state of users through the request's session (commits nothing)."""

    model = RecoveryCode

    async def state(self, user_id: uuid.UUID) -> tuple[str | None, bool, datetime | None] | None:
        """``(encrypted secret, enabled, confirmed_at)`` of ``user_id``, or ``None`` (no user)."""
        row = (
            await self.session.execute(
                select(
                    _u.c.two_factor_secret, _u.c.two_factor_enabled, _u.c.two_factor_confirmed_at
                ).where(_u.c.id == user_id)
            )
        ).first()
        return (row[0], bool(row[1]), row[2]) if row else None

    async def set_pending_secret(self, user_id: uuid.UUID, encrypted: str, now: datetime) -> bool:
        """Store a not-yet-confirmed secret, only while 2FA is off (S26). True if stored."""
        result = await self.session.execute(
            update(_u)
            .where(_u.c.id == user_id, _u.c.two_factor_enabled.is_(False))
            .values(
                two_factor_secret=encrypted,
                two_factor_confirmed_at=None,
                two_factor_last_step=None,
                updated_at=now,
            )
        )
        return (result.rowcount or 0) == 1

    async def enable(self, user_id: uuid.UUID, encrypted: str, step: int, now: datetime) -> bool:
        """Turn 2FA on for exactly the pending secret ``encrypted`` that the code was checked
        against, recording ``step`` as used (S26, S28). False when 2FA is already on or the
        pending secret changed meanwhile."""
        result = await self.session.execute(
            update(_u)
            .where(
                _u.c.id == user_id,
                _u.c.two_factor_enabled.is_(False),
                _u.c.two_factor_secret == encrypted,
            )
            .values(
                two_factor_enabled=True,
                two_factor_confirmed_at=now,
                two_factor_last_step=step,
                updated_at=now,
            )
        )
        return (result.rowcount or 0) == 1

    async def disable(self, user_id: uuid.UUID, now: datetime) -> bool:
        """Turn 2FA off and forget the secret and every recovery code (S31). True if it was on
        or pending."""
        result = await self.session.execute(
            update(_u)
            .where(
                _u.c.id == user_id,
                or_(_u.c.two_factor_enabled.is_(True), _u.c.two_factor_secret.is_not(None)),
            )
            .values(
                two_factor_secret=None,
                two_factor_enabled=False,
                two_factor_confirmed_at=None,
                two_factor_last_step=None,
                updated_at=now,
            )
        )
        await self.session.execute(delete(_r).where(_r.c.user_id == user_id))
        return (result.rowcount or 0) == 1

    async def advance_step(self, user_id: uuid.UUID, step: int) -> bool:
        """Record TOTP time step ``step`` as used if it is newer than the last one (S28).

        One conditional UPDATE: of concurrent callers with the same step, exactly one gets True.
        """
        result = await self.session.execute(
            update(_u)
            .where(
                _u.c.id == user_id,
                _u.c.two_factor_enabled.is_(True),
                or_(_u.c.two_factor_last_step.is_(None), _u.c.two_factor_last_step < step),
            )
            .values(two_factor_last_step=step)
        )
        return (result.rowcount or 0) == 1

    async def replace_codes(self, user_id: uuid.UUID, hashes: Iterable[str], now: datetime) -> None:
        """Delete every recovery code of ``user_id`` and store ``hashes`` as the new set (S30)."""
        await self.session.execute(delete(_r).where(_r.c.user_id == user_id))
        await self.session.execute(
            insert(_r),
            [
                {"id": new_id(), "user_id": user_id, "code_hash": h, "created_at": now}
                for h in hashes
            ],
        )

    async def use_code(self, user_id: uuid.UUID, code_hash: str, now: datetime) -> bool:
        """Mark the unused code ``code_hash`` of ``user_id`` used; True for exactly one caller."""
        result = await self.session.execute(
            update(_r)
            .where(_r.c.user_id == user_id, _r.c.code_hash == code_hash, _r.c.used_at.is_(None))
            .values(used_at=now)
        )
        return (result.rowcount or 0) == 1

    async def remaining_codes(self, user_id: uuid.UUID) -> int:
        """How many unused recovery codes ``user_id`` has."""
        count = await self.session.scalar(
            select(func.count()).where(_r.c.user_id == user_id, _r.c.used_at.is_(None))
        )
        return int(count or 0)
