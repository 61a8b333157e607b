"""Assets' public face: store, list, serve, delete, avatars, quotas (SECURITY.md S38, S41–S46).

Other features call :func:`delete_user_files` (or emit ``user_deleted``) when an account goes,
and may show ``/avatars/<user_id>`` for any user whose ``avatar_asset_id`` is set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from features.assets.content import Prepared, Rejected, prepare
from features.assets.models import Asset
from features.assets.repository import AssetRepository
from features.assets.schemas import PER_PAGE, display_name
from features.assets.uploads import INCOMING_DIR, IncomingFile
from shared.config import Settings
from shared.database import Database, Page, new_id
from shared.storage import LocalStorage, Storage

__all__ = [
    "AssetNotFound",
    "AssetService",
    "NotAnImage",
    "PruneReport",
    "Rejected",
    "delete_user_files",
    "prune",
    "storage_for",
]

# At most this many images are decoded at once per process (each can take ~160 MB at 40 MP).
_IMAGE_WORK = anyio.CapacityLimiter(2)


class AssetNotFound(LookupError):
    """The asset does not exist or belongs to someone else (both answer 404, S38)."""


class NotAnImage(ValueError):
    """Only images can be an avatar."""


def storage_for(settings: Settings) -> Storage:
    """The storage the app uses: local files under ``STORAGE_DIR``."""
    return LocalStorage(settings.storage_dir)


def spool_dir(settings: Settings) -> anyio.Path:
    """Where uploads are received before they are checked (``<STORAGE_DIR>/.incoming``)."""
    return anyio.Path(settings.storage_dir) / INCOMING_DIR


def too_large_message(limit: int) -> str:
    """The message for a file over ``limit`` bytes (shown with the 413 answer, S41)."""
    return f"The file is larger than the {format_bytes(limit)} limit."


def format_bytes(value: int) -> str:
    """``10 MB``, ``512 KB``, ``12 bytes`` (binary units, written the common way)."""
    if value < 1024:
        return f"{value} bytes" if value != 1 else "1 byte"
    for unit in ("KB", "MB", "GB"):
        value_f = value / 1024
        if value_f < 1024 or unit == "GB":
            text = f"{value_f:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        value = int(value_f)
    return f"{value} bytes"  # pragma: no cover


class AssetService:
    """Rules about one user's assets. Write methods commit."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.storage = storage_for(settings)
        self.assets = AssetRepository(session)

    async def list(self, user_id: uuid.UUID, page: int) -> Page[Asset]:
        """One page of the user's assets, newest first. Raises ``PageOutOfRange``."""
        return await self.assets.list_page(user_id, page, PER_PAGE)

    async def used_bytes(self, user_id: uuid.UUID) -> int:
        """Stored bytes that count against the user's quota."""
        return await self.assets.used_bytes(user_id)

    async def quota_left(self, user_id: uuid.UUID) -> int:
        """Bytes the user may still store. Ends the read transaction, so no lock is held
        while an upload streams in afterwards."""
        used = await self.assets.used_bytes(user_id)
        await self.session.rollback()
        return max(0, self.settings.asset_quota_bytes - used)

    async def get(self, user_id: uuid.UUID, asset_id: uuid.UUID) -> Asset:
        """The owned asset. Raises :class:`AssetNotFound`."""
        asset = await self.assets.owned(user_id, asset_id)
        if asset is None:
            raise AssetNotFound(asset_id)
        return asset

    async def avatar_of(self, user_id: uuid.UUID) -> Asset:
        """The avatar asset of any user. Raises :class:`AssetNotFound` when none is set."""
        asset = await self.assets.avatar_of(user_id)
        if asset is None:
            raise AssetNotFound(user_id)
        return asset

    async def store(self, user_id: uuid.UUID, incoming: IncomingFile) -> Asset:
        """Check, convert and store one received file; commit; return the new asset.

        Order (S41, S42, S44): cap → type from the bytes / pixel cap / re-encode (in a worker
        thread) → quota, checked inside the write transaction before anything is written →
        files saved under ``<user_id>/<uuid7>.<ext>`` → row inserted → commit. If the commit
        fails the files are removed again. Raises :class:`Rejected` (413 ``too_large``,
        415 ``type_not_allowed``/``markup``, 422 ``empty``/``too_many_pixels``/
        ``image_unreadable``/``quota``). The work file is always discarded.
        """
        try:
            if incoming.too_large or incoming.path is None:
                raise Rejected("too_large", 413, too_large_message(self.settings.asset_max_bytes))
            prepared = await anyio.to_thread.run_sync(
                lambda: prepare(incoming.path, max_pixels=self.settings.asset_max_pixels),
                limiter=_IMAGE_WORK,
            )
            return await self._save(user_id, incoming, prepared)
        finally:
            await incoming.discard()

    async def _save(self, user_id: uuid.UUID, incoming: IncomingFile, prepared: Prepared) -> Asset:
        await self.assets.lock_owner(user_id)
        used = await self.assets.used_bytes(user_id)
        if used + prepared.size > self.settings.asset_quota_bytes:
            await self.session.rollback()
            left = max(0, self.settings.asset_quota_bytes - used)
            raise Rejected(
                "quota",
                422,
                f"Your storage is full: this file needs {format_bytes(prepared.size)}, "
                f"{format_bytes(left)} of your {format_bytes(self.settings.asset_quota_bytes)} "
                "are left. Delete some files first.",
            )
        asset_id = new_id()
        filename = f"{asset_id}.{prepared.extension}"
        key = f"{user_id}/{filename}"
        thumb_key = f"{user_id}/{asset_id}.thumb.webp" if prepared.thumbnail else None
        saved: list[str] = []
        try:
            source = prepared.data if prepared.data is not None else incoming.path
            assert source is not None
            await self.storage.save(key, source)
            saved.append(key)
            if thumb_key and prepared.thumbnail:
                await self.storage.save(thumb_key, prepared.thumbnail)
                saved.append(thumb_key)
            asset = await self.assets.add(
                Asset(
                    id=asset_id,
                    user_id=user_id,
                    filename=filename,
                    original_name=display_name(incoming.name),
                    mime_type=prepared.mime_type,
                    size=prepared.size,
                    path=key,
                    url=f"/assets/{asset_id}/file",
                    metadata_=prepared.metadata,
                    thumbnail_path=thumb_key,
                    checksum=prepared.checksum,
                )
            )
            await self.session.commit()
        except BaseException:
            await self.session.rollback()
            for saved_key in saved:
                await self.storage.delete(saved_key)
            raise
        if prepared.data is None:
            incoming.path = None  # the work file itself was moved into storage
        return asset

    async def delete(self, user_id: uuid.UUID, asset_id: uuid.UUID) -> Asset:
        """Delete an owned asset: the row (and the avatar pointing at it) is committed first,
        then its files are removed. Raises :class:`AssetNotFound`."""
        asset = await self.get(user_id, asset_id)
        if await self.assets.delete_owned(user_id, asset_id) == 0:
            raise AssetNotFound(asset_id)
        await self.session.commit()
        for key in (asset.path, asset.thumbnail_path):
            if key:
                await self.storage.delete(key)
        return asset

    async def set_avatar(self, user_id: uuid.UUID, asset_id: uuid.UUID) -> Asset:
        """Make an owned image the user's avatar. Raises :class:`AssetNotFound`,
        :class:`NotAnImage`."""
        asset = await self.get(user_id, asset_id)
        if not asset.is_image:
            raise NotAnImage(asset_id)
        await self.assets.set_avatar(user_id, asset.id)
        await self.session.commit()
        return asset

    async def clear_avatar(self, user_id: uuid.UUID) -> None:
        """Remove the user's avatar (the asset stays)."""
        await self.assets.set_avatar(user_id, None)
        await self.session.commit()


async def delete_user_files(settings: Settings, user_id: uuid.UUID) -> int:
    """Remove every stored file of ``user_id`` (their rows go with the user: ON DELETE CASCADE).

    Call after the user's deletion is committed; returns how many files were removed.
    """
    return await storage_for(settings).delete_folder(str(user_id))


@dataclass(slots=True)
class PruneReport:
    """What :func:`prune` found and did (counts; lists of keys for the report)."""

    orphan_files: list[str]
    missing_rows: list[str]
    stale_incoming: int
    dry_run: bool


async def prune(
    db: Database, settings: Settings, *, dry_run: bool = False, grace_seconds: int = 3600
) -> PruneReport:
    """Reconcile storage and database both ways.

    - Files no row refers to (older than ``grace_seconds``, so uploads in flight are left
      alone) are deleted.
    - Rows whose stored file is gone are deleted (a missing thumbnail alone is tolerated).
    - Work files in ``.incoming`` older than ``grace_seconds`` are deleted.

    With ``dry_run`` nothing changes; the report says what would.
    """
    import time

    storage = storage_for(settings)
    async with db.reader() as session:
        rows = await AssetRepository(session).all_keys()
    known = {key for _, path, thumb in rows for key in (path, thumb) if key}
    now = time.time()
    root = anyio.Path(settings.storage_dir)

    async def old_enough(key: str) -> bool:
        try:
            stat = await (root / key).stat()
        except FileNotFoundError:
            return False
        return now - stat.st_mtime >= grace_seconds

    orphans = [k for k in await storage.keys() if k not in known and await old_enough(k)]
    missing = [(asset_id, path) for asset_id, path, _ in rows if not await storage.exists(path)]
    stale = 0
    incoming = root / INCOMING_DIR
    if await incoming.is_dir():
        async for work_file in incoming.iterdir():
            stat = await work_file.stat()
            if now - stat.st_mtime >= grace_seconds:
                stale += 1
                if not dry_run:
                    await work_file.unlink(missing_ok=True)
    if not dry_run:
        for key in orphans:
            await storage.delete(key)
        if missing:
            async with db.write() as session:
                await AssetRepository(session).delete_ids([asset_id for asset_id, _ in missing])
            thumbs = {asset_id: thumb for asset_id, _, thumb in rows if thumb}
            for asset_id, _ in missing:
                if asset_id in thumbs:
                    await storage.delete(thumbs[asset_id])
    return PruneReport(
        orphan_files=orphans,
        missing_rows=[path for _, path in missing],
        stale_incoming=stale,
        dry_run=dry_run,
    )
