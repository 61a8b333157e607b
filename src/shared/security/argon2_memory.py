"""Argon2 hashing with its working memory kept between hashes (SECURITY.md S1).

Each Argon2id hash at the OWASP baseline fills 19 MiB of working memory. Through
argon2-cffi's ``PasswordHasher`` that memory is a fresh ``malloc`` per hash: handed back to
the OS afterwards (:func:`shared.security.passwords.return_large_blocks_to_os`), it has to be
faulted in again by the next hash, 4,864 page faults that cost about 13 ms of kernel time
against 24 ms for the hash itself (measured on this project's 2-vCPU machines). Kept in the
heap instead, it stays resident in every hashing thread for good.

:class:`WorkingMemory` takes the middle way through libargon2's own hook for it, the
``allocate_cbk`` / ``free_cbk`` of ``argon2_context`` (the reference implementation's
``argon2.h``): a block freed by one hash is given to the next, and :meth:`~WorkingMemory.release`
unmaps the blocks no hash is using (the caller does so once hashing has been idle for a
moment). libargon2 wipes the memory before handing it back (its ``clear_internal_memory``),
so a kept block holds nothing derived from a password.

:func:`hash_raw` runs one hash through ``argon2_ctx``; :func:`encode` and :func:`decode`
convert to and from the PHC string format that argon2-cffi and the reference implementation
write (``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>``, unpadded standard base64), so hashes
made here and there verify in either.
"""

from __future__ import annotations

import base64
import binascii
import mmap
import re
import threading
from dataclasses import dataclass
from typing import Any

from argon2 import Type
from argon2.exceptions import HashingError, InvalidHashError
from argon2.low_level import ARGON2_VERSION, core, error_to_str, ffi, lib

_TYPE_NAMES = {Type.ID: "argon2id", Type.I: "argon2i", Type.D: "argon2d"}
_TYPES = {name: kind for kind, name in _TYPE_NAMES.items()}
_PHC = re.compile(
    r"\$(argon2id|argon2i|argon2d)\$v=(\d{1,3})\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})"
    r"\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{6,})",
    re.ASCII,
)


class WorkingMemory:
    """Argon2 working-memory blocks, reused from one hash to the next.

    At most one block per hash running at once exists (so ``threads`` × ``memory_kib`` for
    :class:`shared.security.passwords.Passwords`). Blocks are anonymous ``mmap`` regions: an
    unmapped block gives its memory straight back to the OS. Thread-safe: libargon2 calls
    :attr:`allocate` and :attr:`free` on the hashing threads, :meth:`release` runs on any.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[mmap.mmap, Any]] = []  # (region, uint8_t[] view of it)
        self._busy: dict[int, tuple[mmap.mmap, Any]] = {}  # by address
        self.allocate = ffi.callback(
            "allocate_fptr", self._allocate, error=lib.ARGON2_MEMORY_ALLOCATION_ERROR
        )
        self.free = ffi.callback("deallocate_fptr", self._free)

    def _allocate(self, memory: Any, size: int) -> int:
        with self._lock:
            block = next((b for b in self._idle if len(b[0]) == size), None)
            if block is not None:
                self._idle.remove(block)
        if block is None:
            region = mmap.mmap(-1, size)
            block = (region, ffi.from_buffer("uint8_t[]", region))
        with self._lock:
            self._busy[_address(block[1])] = block
        memory[0] = block[1]
        return lib.ARGON2_OK  # type: ignore[no-any-return]

    def _free(self, memory: Any, _size: int) -> None:
        with self._lock:
            self._idle.append(self._busy.pop(_address(memory)))

    def held_bytes(self) -> int:
        """Bytes of working memory mapped now, in use or idle."""
        with self._lock:
            return sum(len(region) for region, _ in [*self._idle, *self._busy.values()])

    def release(self) -> int:
        """Unmap every block no hash is using; returns how many bytes went back to the OS."""
        with self._lock:
            idle, self._idle = self._idle, []
        released = sum(len(region) for region, _ in idle)
        idle.clear()  # the views go first, then each region is unmapped as it is freed
        return released


def _address(pointer: Any) -> int:
    return int(ffi.cast("uintptr_t", pointer))


@dataclass(frozen=True, slots=True)
class Argon2Hash:
    """A decoded PHC string: the parameters, the salt and the hash (``digest``)."""

    type: Type
    version: int
    memory_kib: int
    time_cost: int
    parallelism: int
    salt: bytes
    digest: bytes


def hash_raw(
    memory: WorkingMemory,
    password: bytes,
    salt: bytes,
    *,
    type: Type,
    memory_kib: int,
    time_cost: int,
    parallelism: int,
    hash_len: int,
    version: int = ARGON2_VERSION,
) -> bytes:
    """The ``hash_len``-byte Argon2 hash of ``password`` (RFC 9106 §3), its working memory
    taken from ``memory``. Blocks the calling thread for the whole hash (the GIL is released
    while libargon2 runs). Raises ``argon2.exceptions.HashingError`` when libargon2 refuses
    the parameters or cannot get memory."""
    out = ffi.new("uint8_t[]", hash_len)
    password_buffer = ffi.new("uint8_t[]", password)
    salt_buffer = ffi.new("uint8_t[]", salt)
    context = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": hash_len,
            "pwd": password_buffer,
            "pwdlen": len(password),
            "salt": salt_buffer,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": time_cost,
            "m_cost": memory_kib,
            "lanes": parallelism,
            "threads": parallelism,
            "version": version,
            "allocate_cbk": memory.allocate,
            "free_cbk": memory.free,
            "flags": lib.ARGON2_DEFAULT_FLAGS,
        },
    )
    result = core(context, type.value)
    if result != lib.ARGON2_OK:
        raise HashingError(error_to_str(result))
    return bytes(ffi.buffer(out, hash_len))


def encode(value: Argon2Hash) -> str:
    """The PHC string of ``value``, as argon2-cffi writes it."""
    return (
        f"${_TYPE_NAMES[value.type]}$v={value.version}"
        f"$m={value.memory_kib},t={value.time_cost},p={value.parallelism}"
        f"${_b64encode(value.salt)}${_b64encode(value.digest)}"
    )


def decode(encoded: str) -> Argon2Hash:
    """Parse a PHC string of the form :func:`encode` writes.

    Raises ``argon2.exceptions.InvalidHashError`` for anything else, including valid but
    rarer forms (no version field, ``keyid`` or ``data`` parameters), which callers leave to
    argon2-cffi.
    """
    match = _PHC.fullmatch(encoded)
    if match is None:
        raise InvalidHashError(encoded)
    name, version, memory_kib, time_cost, parallelism, salt, digest = match.groups()
    try:
        return Argon2Hash(
            type=_TYPES[name],
            version=int(version),
            memory_kib=int(memory_kib),
            time_cost=int(time_cost),
            parallelism=int(parallelism),
            salt=_b64decode(salt),
            digest=_b64decode(digest),
        )
    except binascii.Error as error:  # e.g. a length no base64 text can have
        raise InvalidHashError(encoded) from error


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
