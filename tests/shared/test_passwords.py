"""Argon2id memory is handed back after use (SECURITY.md S1: a login burst cannot exhaust memory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from shared.config import ROOT_DIR
from shared.security.passwords import return_large_blocks_to_os

BURST = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, "src")
    from shared.security.passwords import Passwords

    def rss_mib():
        status = open("/proc/self/status").read()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    async def main():
        passwords = Passwords()  # OWASP baseline: 19 MiB per hash
        digest = await passwords.hash("correct horse battery staple")
        before = rss_mib()
        for _ in range(3):
            await asyncio.gather(*(passwords.verify(digest, "wrong password!") for _ in range(8)))
        print(rss_mib() - before)

    asyncio.run(main())
    """
)


def test_large_blocks_are_served_by_mmap_on_glibc() -> None:
    assert return_large_blocks_to_os() is True


def test_s1_a_burst_of_verifies_leaves_no_argon2_memory_behind() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BURST], cwd=ROOT_DIR, capture_output=True, text=True, check=True
    )
    growth_mib = float(done.stdout.strip())
    # Each verify holds 19 MiB while it runs; kept blocks would add ~19 MiB per pool thread.
    assert growth_mib < 8, growth_mib
