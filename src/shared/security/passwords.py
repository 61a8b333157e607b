"""Argon2id password hashing off the event loop (SECURITY.md S1, S2, S6).

Hashing and verifying run in a dedicated thread pool of ``threads`` threads (by default the
CPU count divided by the number of worker processes), so a burst of logins neither blocks
other requests nor grows memory without bound (each verify holds ``memory_kib`` of RAM while
it runs, so a worker's peak is ``threads × memory_kib`` above its steady size). That memory is
reused from one hash to the next and handed back to the OS once no hash has run for
``IDLE_RELEASE_SECONDS`` (:mod:`shared.security.argon2_memory`). On Linux the hashing threads
run at a lower CPU priority (``HASHING_NICENESS``) than the event loop, so while a burst of
logins keeps them busy, pages still get the CPU first.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hmac
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import (
    HashingError,
    InvalidHashError,
    VerificationError,
    VerifyMismatchError,
)
from argon2.low_level import ARGON2_VERSION

from shared.security.argon2_memory import Argon2Hash, WorkingMemory, decode, encode, hash_raw

MIN_LENGTH = 8  # S3 / ASVS 6.2.1
MAX_BYTES = 4096  # S3: absurd input is refused before hashing

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
IDLE_RELEASE_SECONDS = 2.0  # hashing idle this long: its working memory goes back to the OS
HASH_LEN = 32
# Nice value added to each hashing thread (Linux): a thread at +10 gets about a tenth of the CPU
# time of a thread at 0 competing with it for a core (the kernel's CFS weights 110 vs 1024).
HASHING_NICENESS = 10
SALT_LEN = 16


def return_large_blocks_to_os(threshold: int = 1024 * 1024) -> bool:
    """Have glibc serve allocations of ``threshold`` bytes or more with ``mmap``; True if set.

    An Argon2 hash that argon2-cffi runs itself (the dummy hash at start, a hash in a rarer
    format) allocates ``memory_kib`` (19 MiB) at once, as may other large buffers (an
    uploaded image being decoded). By default glibc raises its mmap threshold after the first
    such block is freed, so later blocks come from the heap and stay in every thread's arena:
    a worker kept ~20 MiB more per Argon2 thread after a login burst. A fixed threshold
    (mallopt(3) ``M_MMAP_THRESHOLD``; setting it turns the dynamic adjustment off) hands each
    block back to the OS when it is freed. A no-op where the C library is not glibc.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def lower_thread_priority(niceness: int = HASHING_NICENESS) -> bool:
    """Add ``niceness`` to the calling thread's nice value; True if it was changed.

    Runs as the hashing pool's thread initializer. Argon2 is CPU-bound for its whole run (24 ms
    of CPU at the OWASP baseline with the SSE2 build), so a login burst keeps every hashing
    thread runnable; at the same priority the event loop would get only its fair share of a
    core and every page would wait behind the hashes (SECURITY.md S1: logins must not starve
    signed-in users). Linux keeps a nice value per thread and ``setpriority(2)`` accepts a
    thread id there; elsewhere it is per process, so this does nothing and returns False.
    Raising one's own nice value needs no privilege.
    """
    if not sys.platform.startswith("linux"):
        return False
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + niceness))
    except OSError:
        return False
    return True


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
        self._pool = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="argon2", initializer=lower_thread_priority
        )
        self.hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=HASH_LEN,
            salt_len=SALT_LEN,
            type=Type.ID,
        )
        self.memory = WorkingMemory()
        self._last_hash = 0.0  # loop time when the last hash or verify ended
        self._release: asyncio.TimerHandle | None = None
        self._release_loop: asyncio.AbstractEventLoop | None = None
        # A real hash of a random secret: unknown users still cost one verify (S6).
        self._dummy_hash = self.hasher.hash(os.urandom(16).hex())

    async def hash(self, password: str) -> str:
        """Return the PHC-format Argon2id hash of ``password`` (computed in the pool)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._hash, password)
        finally:
            self._hashed(loop)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Return True when ``password`` matches ``password_hash``.

        With ``password_hash=None`` (unknown user, or an account without a password) a verify
        against a dummy hash still runs, so the answer takes the same time (S6).
        """
        loop = asyncio.get_running_loop()
        target = password_hash or self._dummy_hash
        try:
            matches = await loop.run_in_executor(self._pool, self._verify, target, password)
        finally:
            self._hashed(loop)
        return matches and password_hash is not None

    def _hash(self, password: str) -> str:
        cost = self.hasher  # the configured parameters
        salt = os.urandom(SALT_LEN)
        digest = hash_raw(
            self.memory,
            password.encode(),
            salt,
            type=Type.ID,
            memory_kib=cost.memory_cost,
            time_cost=cost.time_cost,
            parallelism=cost.parallelism,
            hash_len=HASH_LEN,
        )
        return encode(
            Argon2Hash(
                Type.ID,
                ARGON2_VERSION,
                cost.memory_cost,
                cost.time_cost,
                cost.parallelism,
                salt,
                digest,
            )
        )

    def _verify(self, password_hash: str, password: str) -> bool:
        """Recompute ``password_hash`` with its own parameters and salt; compare in constant
        time. A hash in a form :func:`decode` does not read goes to argon2-cffi."""
        try:
            stored = decode(password_hash)
        except InvalidHashError:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        try:
            digest = hash_raw(
                self.memory,
                password.encode(),
                stored.salt,
                type=stored.type,
                memory_kib=stored.memory_kib,
                time_cost=stored.time_cost,
                parallelism=stored.parallelism,
                hash_len=len(stored.digest),
                version=stored.version,
            )
        except HashingError:  # parameters libargon2 refuses: no password matches (as before)
            return False
        return hmac.compare_digest(digest, stored.digest)

    def _hashed(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note that a hash ended; make sure a release of the working memory is scheduled."""
        self._last_hash = loop.time()
        if self._release is None or self._release_loop is not loop:
            self._release_loop = loop
            self._release = loop.call_later(IDLE_RELEASE_SECONDS, self._release_if_idle)

    def _release_if_idle(self) -> None:
        loop = self._release_loop
        assert loop is not None
        idle_for = loop.time() - self._last_hash
        if idle_for < IDLE_RELEASE_SECONDS:  # hashed since: look again when it may be idle
            self._release = loop.call_later(IDLE_RELEASE_SECONDS - idle_for, self._release_if_idle)
            return
        self._release = None
        self.memory.release()  # blocks still in use stay; their hash reschedules this

    def needs_rehash(self, password_hash: str) -> bool:
        """True when ``password_hash`` was made with other parameters than the current ones (S2)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
