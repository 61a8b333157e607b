"""All SQL about assets. Every query is scoped to one owner (SECURITY.md S38).

The avatar lives in ``users.avatar_asset_id``; like the sessions lookup, these queries read
and write that one column of ``users`` directly.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update

from features.assets.models import Asset
from features.users.models import User
from shared.database import Page, Repository

_NEWEST_FIRST = (Asset.created_at.desc(), Asset.id.desc())


class AssetRepository(Repository[Asset]):
    """Assets of one owner at a time."""

    model = Asset

    async def owned(self, user_id: uuid.UUID, asset_id: uuid.UUID) -> Asset | None:
        """Return asset ``asset_id`` if ``user_id`` owns it, else ``None``."""
        return await self.session.scalar(
            select(Asset).where(Asset.id == asset_id, Asset.user_id == user_id)
        )

    async def list_page(self, user_id: uuid.UUID, page: int, per_page: int) -> Page[Asset]:
        """One page of ``user_id``'s assets, newest first. Raises ``PageOutOfRange``."""
        stmt = select(Asset).where(Asset.user_id == user_id).order_by(*_NEWEST_FIRST)
        return await self.paginate(stmt, page, per_page)

    async def used_bytes(self, user_id: uuid.UUID) -> int:
        """Sum of stored sizes of ``user_id``'s assets (bytes)."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(Asset.size), 0)).where(Asset.user_id == user_id)
        )
        return int(total or 0)

    async def lock_owner(self, user_id: uuid.UUID) -> None:
        """Serialise quota checks of one user: ``SELECT … FOR UPDATE`` on the user's row.

        On PostgreSQL this row lock makes two concurrent uploads of one user check the quota
        one after the other; on SQLite the writer transaction (BEGIN IMMEDIATE) already does.
        """
        await self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    async def delete_owned(self, user_id: uuid.UUID, asset_id: uuid.UUID) -> int:
        """Delete the asset if ``user_id`` owns it; returns rows deleted (0 or 1).

        ``users.avatar_asset_id`` pointing at it becomes NULL (ON DELETE SET NULL).
        """
        await self.session.execute(
            update(User)
            .where(User.id == user_id, User.avatar_asset_id == asset_id)
            .values(avatar_asset_id=None)
        )
        result = await self.session.execute(
            delete(Asset).where(Asset.id == asset_id, Asset.user_id == user_id)
        )
        return result.rowcount or 0

    async def set_avatar(self, user_id: uuid.UUID, asset_id: uuid.UUID | None) -> None:
        """Point ``user_id``'s avatar at ``asset_id`` (or clear it)."""
        await self.session.execute(
            update(User).where(User.id == user_id).values(avatar_asset_id=asset_id)
        )

    async def avatar_of(self, user_id: uuid.UUID) -> Asset | None:
        """The asset ``user_id`` chose as avatar, or ``None`` (one join query)."""
        return await self.session.scalar(
            select(Asset)
            .join(User, User.avatar_asset_id == Asset.id)
            .where(User.id == user_id, Asset.user_id == user_id)
        )

    async def all_keys(self) -> list[tuple[uuid.UUID, str, str | None]]:
        """``(id, path, thumbnail_path)`` of every asset (for reconciliation)."""
        rows = await self.session.execute(select(Asset.id, Asset.path, Asset.thumbnail_path))
        return [(row[0], row[1], row[2]) for row in rows]

    async def delete_ids(self, ids: list[uuid.UUID]) -> int:
        """Delete the assets with these ids (any owner); returns rows deleted."""
        if not ids:
            return 0
        await self.session.execute(
            update(User).where(User.avatar_asset_id.in_(ids)).values(avatar_asset_id=None)
        )
        result = await self.session.execute(delete(Asset).where(Asset.id.in_(ids)))
        return result.rowcount or 0
