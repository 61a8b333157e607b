"""Argon2id password hashing off the event loop (SECURITY.md S1, S2, S6).

Hashing and verifying run in a dedicated thread pool of ``threads`` threads (by default the
CPU count divided by the number of worker processes), so a burst of logins neither blocks
other requests nor grows memory without bound (each verify holds ``memory_kib`` of RAM while
it runs, so a worker's peak is ``threads × memory_kib`` above its steady size).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8  # S3 / ASVS 6.2.1
MAX_BYTES = 4096  # S3: absurd input is refused before hashing

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>


def return_large_blocks_to_os(threshold: int = 1024 * 1024) -> bool:
    """Have glibc serve allocations of ``threshold`` bytes or more with ``mmap``; True if set.

    Each Argon2 hash or verify allocates ``memory_kib`` (19 MiB) at once. By default glibc
    raises its mmap threshold after the first such block is freed, so later blocks come from
    the heap and stay in every thread's arena: a worker kept ~20 MiB more per Argon2 thread
    after a login burst. A fixed threshold (mallopt(3) ``M_MMAP_THRESHOLD``; setting it turns
    the dynamic adjustment off) hands each block back to the OS when it is freed. A no-op
    where the C library is not glibc.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def default_threads(processes: int = 1) -> int:
    """Hashing threads for one of ``processes`` worker processes: the CPU count shared among
    them, at least 1. More would only queue on the CPUs while each held its Argon2 memory."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


class Passwords:
    """Hash and verify passwords with Argon2id (RFC 9106) at the configured cost.

    ``time_cost`` iterations, ``memory_kib`` KiB of memory, ``parallelism`` lanes; the salt is
    16 random bytes. Defaults are OWASP's baseline (m=19 MiB, t=2, p=1). At most ``threads``
    hashes run at once (:func:`default_threads` when 0).
    """

    def __init__(
        self,
        time_cost: int = 2,
        memory_kib: int = 19456,
        parallelism: int = 1,
        *,
        threads: int = 0,
    ) -> None:
        return_large_blocks_to_os()  # before the first hash below
        self.threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="argon2")
        self.hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # A real hash of a random secret: unknown users still cost one verify (S6).
        self._dummy_hash = self.hasher.hash(os.urandom(16).hex())

    async def hash(self, password: str) -> str:
        """Return the PHC-format Argon2id hash of ``password`` (computed in the pool)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Return True when ``password`` matches ``password_hash``.

        With ``password_hash=None`` (unknown user, or an account without a password) a verify
        against a dummy hash still runs, so the answer takes the same time (S6).
        """
        loop = asyncio.get_running_loop()
        target = password_hash or self._dummy_hash
        try:
            await loop.run_in_executor(self._pool, self.hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """True when ``password_hash`` was made with other parameters than the current ones (S2)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
