"""Argon2id memory stays bounded during a burst and is handed back after it (SECURITY.md S1: a
login burst cannot exhaust memory)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from app import create_app
from shared.config import ROOT_DIR
from shared.security import passwords as passwords_module
from shared.security.passwords import Passwords, default_threads, return_large_blocks_to_os

BURST = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, "src")
    from shared.security import passwords as module
    from shared.security.passwords import Passwords

    module.IDLE_RELEASE_SECONDS = 0.2

    def rss_mib():
        status = open("/proc/self/status").read()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    async def main():
        before = rss_mib()
        passwords = Passwords(threads=2)  # OWASP baseline: 19 MiB per hash
        digest = await passwords.hash("correct horse battery staple")
        for _ in range(3):
            await asyncio.gather(*(passwords.verify(digest, "wrong password!") for _ in range(8)))
        during = rss_mib() - before
        await asyncio.sleep(1.0)  # idle: the working memory goes back
        print(during, rss_mib() - before)

    asyncio.run(main())
    """
)


def test_large_blocks_are_served_by_mmap_on_glibc() -> None:
    assert return_large_blocks_to_os() is True


def test_s1_a_burst_of_verifies_keeps_one_block_per_thread_and_leaves_nothing_behind() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BURST], cwd=ROOT_DIR, capture_output=True, text=True, check=True
    )
    during_mib, after_mib = (float(x) for x in done.stdout.split())
    # 24 verifies on 2 threads: at most 2 blocks of 19 MiB are kept between hashes ...
    assert during_mib < 2 * 19 + 8, during_mib
    # ... and once hashing is idle they go back to the OS.
    assert after_mib < 8, after_mib


@pytest.mark.parametrize(
    ("cpus", "processes", "threads"), [(2, 1, 2), (2, 2, 1), (8, 3, 2), (1, 4, 1)]
)
def test_hashing_threads_share_the_cpus_among_worker_processes(
    monkeypatch: pytest.MonkeyPatch, cpus: int, processes: int, threads: int
) -> None:
    monkeypatch.setattr(passwords_module.os, "cpu_count", lambda: cpus)
    assert default_threads(processes) == threads


def test_s1_no_more_hashes_run_at_once_than_the_pool_has_threads() -> None:
    passwords = Passwords(time_cost=1, memory_kib=8, threads=2)
    digest = passwords.hasher.hash("correct horse battery staple")
    running, most = 0, 0
    lock = threading.Lock()
    real_verify = passwords._verify

    def verify(hash_: str, password: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)  # long enough for every queued verify to try to start
        with lock:
            running -= 1
        return real_verify(hash_, password)

    passwords._verify = verify  # type: ignore[method-assign]  # counts, then really verifies

    async def burst() -> list[bool]:
        return await asyncio.gather(
            *(passwords.verify(digest, "correct horse battery staple") for _ in range(8))
        )

    assert asyncio.run(burst()) == [True] * 8
    assert most == 2


def test_the_app_gives_each_worker_its_share_of_the_cpus(settings) -> None:
    shared = create_app(settings.model_copy(update={"web_concurrency": 2, "argon2_threads": 0}))
    assert shared.state.passwords.threads == default_threads(2)
    chosen = create_app(settings.model_copy(update={"web_concurrency": 2, "argon2_threads": 3}))
    assert chosen.state.passwords.threads == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values: Linux")
async def test_s1_hashing_threads_run_at_a_lower_priority_than_the_event_loop() -> None:
    """S1: while logins keep the hashing threads busy, pages still get the CPU first."""
    passwords = Passwords(time_cost=1, memory_kib=64, parallelism=1, threads=2)
    loop = asyncio.get_running_loop()

    def nice_value() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = await asyncio.gather(
        *(loop.run_in_executor(passwords._pool, nice_value) for _ in range(4))
    )
    assert set(seen) == {min(19, own + passwords_module.HASHING_NICENESS)}
    # The event loop's thread (and so the process's other threads) kept its own value.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
    digest = await passwords.hash("correct horse battery staple")  # and they still hash
    assert await passwords.verify(digest, "correct horse battery staple")
