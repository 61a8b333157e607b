"""File storage behind one small interface (DESIGN.md §1, SECURITY.md S43).

A *key* is a relative, server-made name such as ``<user uuid>/<asset uuid>.webp``: only
letters, digits, ``.``, ``_`` and ``-`` in ``/``-separated segments, no segment starting with
a dot, no ``..``. Keys never contain user input; :func:`check_key` refuses anything else, and
:class:`LocalStorage` also checks that the resolved path stays under its root, so no key can
escape the storage root.

:class:`Storage` is what features use; :class:`LocalStorage` keeps files under ``STORAGE_DIR``
(default ``db/assets``). An object store can implement the same five methods.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread

CHUNK_BYTES = 64 * 1024
_KEY_RE = re.compile(
    r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){0,3}$"
)


class InvalidKey(ValueError):
    """The key is not a server-made storage name (absolute, ``..``, odd characters …)."""


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid storage key, else raise :class:`InvalidKey`."""
    if not _KEY_RE.fullmatch(key) or ".." in key:
        raise InvalidKey(key[:80])
    return key


class Storage(Protocol):
    """Where asset files live. Every method takes a key checked by :func:`check_key`."""

    async def save(self, key: str, data: bytes | Path) -> None:
        """Store ``data`` (bytes, or a local file that is moved in) under ``key``, atomically:
        readers see the whole file or nothing."""
        ...

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """Return the file's content as chunks. Raises ``FileNotFoundError`` if it is missing."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the file; True if it existed."""
        ...

    async def exists(self, key: str) -> bool:
        """True if a file is stored under ``key``."""
        ...

    async def keys(self) -> list[str]:
        """Every stored key (for reconciliation), excluding work files under dot-folders."""
        ...

    async def delete_folder(self, folder: str) -> int:
        """Remove every file whose key starts with ``folder/``; returns how many."""
        ...


class LocalStorage:
    """:class:`Storage` on the local file system under ``root`` (created on first save)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        """The absolute path for ``key``. Raises :class:`InvalidKey` if it would leave the root."""
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(key[:80])
        return path

    async def save(self, key: str, data: bytes | Path) -> None:
        path = self.path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            try:
                if isinstance(data, bytes):
                    with partial.open("wb") as out:
                        out.write(data)
                        out.flush()
                        os.fsync(out.fileno())
                else:
                    shutil.move(data, partial)
                os.replace(partial, path)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise

        await anyio.to_thread.run_sync(write)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        handle = await anyio.open_file(self.path(key), "rb")

        async def chunks() -> AsyncIterator[bytes]:
            async with handle:
                while chunk := await handle.read(CHUNK_BYTES):
                    yield chunk

        return chunks()

    async def delete(self, key: str) -> bool:
        path = self.path(key)

        def remove() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await anyio.to_thread.run_sync(remove)

    async def exists(self, key: str) -> bool:
        return await anyio.Path(self.path(key)).is_file()

    async def keys(self) -> list[str]:
        def walk() -> list[str]:
            if not self.root.is_dir():
                return []
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                base = Path(dirpath).relative_to(self.root)
                for name in filenames:
                    key = (base / name).as_posix()
                    found.append(key)
            return sorted(found)

        return await anyio.to_thread.run_sync(walk)

    async def delete_folder(self, folder: str) -> int:
        path = self.path(folder)

        def remove() -> int:
            if not path.is_dir():
                return 0
            count = sum(len(files) for _, _, files in os.walk(path))
            shutil.rmtree(path, ignore_errors=True)
            return count

        return await anyio.to_thread.run_sync(remove)
