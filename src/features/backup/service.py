"""Online backups of the SQLite database and the asset files, and their restore (SECURITY.md R6).

A backup is one ``slicestar-<UTC stamp>.tar.gz`` in ``BACKUP_DIR`` (default ``db/backups/``,
a folder no route serves), mode 0600, holding:

- ``manifest.json``: format, creation time, migration revision, database size and SHA-256;
- ``database.sqlite``: a consistent copy made with SQLite's online backup API in one step
  (one read transaction: writers keep going in WAL mode and none of their half-done work is
  copied), checked with ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``;
- ``assets/…``: the files under ``STORAGE_DIR``, copied *after* the database snapshot, so every
  asset row in the snapshot has its file (files written later are extra, never missing).

Only the newest ``BACKUP_KEEP`` archives are kept. PostgreSQL is backed up with ``pg_dump``
(README "Backups"); the functions here raise :class:`NotSQLite` for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shared.clock import now
from shared.config import Settings
from shared.database.serving import DatabaseInUse, exclusive_lock, sqlite_file

logger = logging.getLogger(__name__)

PREFIX = "slicestar-"
SUFFIX = ".tar.gz"
FORMAT = 1
DATABASE_MEMBER = "database.sqlite"
ASSETS_MEMBER = "assets"


class BackupError(Exception):
    """A backup or restore could not be made; the message says why and what to do."""


# What to run instead on PostgreSQL (also in README "Backups"). pg_dump and pg_restore take a
# libpq URL, which has no "+asyncpg" driver part: PG_URL is DATABASE_URL without it.
PG_URL_COMMAND = """PG_URL=$(printf '%s\\n' "$DATABASE_URL" | sed 's/+asyncpg//')"""
PG_DUMP_COMMAND = (
    'pg_dump --format=custom --file=db/backups/slicestar-$(date -u +%Y%m%dT%H%M%SZ).dump "$PG_URL"'
)
PG_RESTORE_COMMAND = (
    'pg_restore --clean --if-exists --no-owner --dbname="$PG_URL" db/backups/slicestar-….dump'
)


class NotSQLite(BackupError):
    """``DATABASE_URL`` is not an SQLite file: use the server's own tools (``pg_dump``).

    The message gives the shell commands to run from the project folder (POSIX ``sh``).
    """

    def __init__(self) -> None:
        super().__init__(
            "DATABASE_URL is not an SQLite file. Back up PostgreSQL with pg_dump and restore "
            'with pg_restore; both take the URL without "+asyncpg":\n'
            f"  {PG_URL_COMMAND}\n"
            f"  {PG_DUMP_COMMAND}\n"
            f"  {PG_RESTORE_COMMAND}\n"
            "Copy STORAGE_DIR beside the dump. See README, Backups."
        )


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: the archive, what it holds, and the archives rotation removed."""

    path: Path
    database_bytes: int
    asset_files: int
    revision: str | None
    removed: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    """A finished restore: the archive's manifest and where the replaced state was moved."""

    manifest: dict[str, object]
    asset_files: int
    previous: list[Path]


def database_file(settings: Settings) -> Path:
    """The SQLite file of ``settings``; raises :class:`NotSQLite` otherwise."""
    path = sqlite_file(settings.database_url)
    if path is None:
        raise NotSQLite()
    return path


def list_backups(backup_dir: Path) -> list[Path]:
    """The archives in ``backup_dir``, newest first (names sort by their UTC time stamp)."""
    if not backup_dir.is_dir():
        return []
    archives = [
        p for p in backup_dir.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)
    ]
    return sorted(archives, key=lambda p: p.name, reverse=True)


def check_database(path: Path) -> str | None:
    """Run ``integrity_check`` and ``foreign_key_check`` on ``path``; return the revision.

    Raises :class:`BackupError` naming the first problem found.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            raise BackupError(f"integrity_check failed: {result[:3]}")
        dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            raise BackupError(f"foreign_key_check failed: {dangling[:3]}")
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            row = None
        return row[0] if row else None
    finally:
        conn.close()


def _snapshot(source: Path, target: Path) -> None:
    """Copy ``source`` into ``target`` with the online backup API, in one step."""
    src = sqlite3.connect(source, timeout=30)  # only read; mode=ro could not open a WAL file
    dst = sqlite3.connect(target)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst)  # pages=-1: everything inside one read transaction
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def _asset_files(storage_dir: Path) -> list[Path]:
    """Regular files under ``storage_dir``; hidden and temporary files (uploads in flight) skipped."""
    if not storage_dir.is_dir():
        return []
    files = []
    for path in sorted(storage_dir.rglob("*")):
        relative = path.relative_to(storage_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix in (".tmp", ".part") or path.is_symlink() or not path.is_file():
            continue
        files.append(path)
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_backup(settings: Settings, *, keep: int | None = None) -> BackupResult:
    """Write a verified archive of the database and assets into ``settings.backup_dir``.

    Safe while the app serves and writes (WAL readers do not block writers). ``keep``
    (default ``BACKUP_KEEP``, at least 1) archives are kept, older ones deleted.
    Raises :class:`NotSQLite` for PostgreSQL, :class:`BackupError` when the copy fails its checks.
    """
    source = database_file(settings)
    if not source.exists():
        raise BackupError(f"no database at {source}: run `alembic upgrade head` first")
    keep = max(1, settings.backup_keep if keep is None else keep)
    backup_dir = settings.backup_dir
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created: datetime = now()
    name = f"{PREFIX}{created.strftime('%Y%m%dT%H%M%S.%f')[:-3]}Z{SUFFIX}"
    target = backup_dir / name
    with tempfile.TemporaryDirectory(dir=backup_dir, prefix=".work-") as work:
        work_dir = Path(work)
        snapshot = work_dir / DATABASE_MEMBER
        _snapshot(source, snapshot)
        revision = check_database(snapshot)
        snapshot_bytes = snapshot.stat().st_size
        assets = _asset_files(settings.storage_dir)
        manifest = {
            "format": FORMAT,
            "created_at": created.isoformat(),
            "revision": revision,
            "database_bytes": snapshot_bytes,
            "database_sha256": _sha256(snapshot),
        }
        partial = work_dir / name
        copied = 0
        with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
            archive.add(snapshot, arcname=DATABASE_MEMBER)
            for path in assets:
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: not needed
                    arcname = f"{ASSETS_MEMBER}/{path.relative_to(settings.storage_dir).as_posix()}"
                    archive.add(path, arcname=arcname, recursive=False)
                    copied += 1
            manifest["asset_files"] = copied
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            info.mtime = int(created.timestamp())
            archive.addfile(info, io.BytesIO(data))
        partial.chmod(0o600)
        os.replace(partial, target)  # appears complete or not at all
    removed = rotate(backup_dir, keep)
    logger.info("backup written", extra={"archive": str(target), "asset_files": copied})
    return BackupResult(
        path=target,
        database_bytes=snapshot_bytes,
        asset_files=copied,
        revision=revision,
        removed=removed,
    )


def rotate(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` archives in ``backup_dir``; return the deleted paths."""
    removed = list_backups(backup_dir)[max(1, keep) :]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def backup_if_due(settings: Settings) -> BackupResult | None:
    """For the in-app schedule: back up when the newest archive is older than the interval.

    Several workers may call this at once: an exclusive lock on ``.schedule.lock`` in the
    backup folder lets one of them work; the others return ``None`` at once.
    """
    interval = settings.backup_interval_minutes * 60
    settings.backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(
        settings.backup_dir / ".schedule.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        newest = list_backups(settings.backup_dir)
        if newest and now().timestamp() - newest[0].stat().st_mtime < interval * 0.9:
            return None
        return create_backup(settings)
    finally:
        os.close(fd)


def restore_backup(settings: Settings, archive_path: Path, *, force: bool = False) -> RestoreResult:
    """Replace the database and the asset files with the contents of ``archive_path``.

    The archive is unpacked (tar "data" filter: no absolute paths, links or devices) and its
    database checked before anything is touched. The current database (with its ``-wal``) and
    asset folder are moved aside to ``*.pre-restore-<stamp>``, never deleted.
    Refuses with :class:`BackupError` while an app serves this database (see
    :mod:`shared.database.serving`) unless ``force``; raises :class:`NotSQLite` for PostgreSQL.
    """
    target = database_file(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".restore-") as work:
        work_dir = Path(work)
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                archive.extractall(work_dir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{archive_path} is not a readable backup archive: {exc}") from exc
        manifest_path = work_dir / "manifest.json"
        snapshot = work_dir / DATABASE_MEMBER
        if not manifest_path.is_file() or not snapshot.is_file():
            raise BackupError(f"{archive_path} is not a Slicestar backup (no manifest or database)")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("database_sha256") != _sha256(snapshot):
            raise BackupError("the database in the archive does not match its manifest checksum")
        check_database(snapshot)
        restored_assets = work_dir / ASSETS_MEMBER
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(exclusive_lock(target))
            except DatabaseInUse:
                if not force:
                    raise BackupError(
                        "the app is serving this database: stop it first, or pass --force "
                        "(and restart every app process right after)"
                    ) from None
            previous = _move_aside(target, settings.storage_dir, stamp)
            os.replace(snapshot, target)
            if restored_assets.is_dir():
                settings.storage_dir.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(restored_assets, settings.storage_dir)
            else:
                settings.storage_dir.mkdir(parents=True, exist_ok=True)
    count = len(_asset_files(settings.storage_dir))
    logger.info("backup restored", extra={"archive": str(archive_path), "asset_files": count})
    return RestoreResult(manifest=manifest, asset_files=count, previous=previous)


def _move_aside(database: Path, storage_dir: Path, stamp: str) -> list[Path]:
    moved = []
    for suffix in ("", "-wal", "-shm"):
        current = database.with_name(database.name + suffix)
        if current.exists():
            aside = database.with_name(f"{database.name}.pre-restore-{stamp}{suffix}")
            os.replace(current, aside)
            moved.append(aside)
    if storage_dir.exists():
        aside = storage_dir.with_name(f"{storage_dir.name}.pre-restore-{stamp}")
        os.replace(storage_dir, aside)
        moved.append(aside)
    return moved
