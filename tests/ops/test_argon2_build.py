"""libargon2 built for AVX2 where the CPU has it (``scripts/build-argon2-avx2.sh``, run by
``make install``; README "Quick start").

The build must come from hash-pinned files only, and where it ran the installed library must
really hold AVX2 code. That the hashes it computes are right is checked against the reference
implementation's known answers in ``tests/shared/test_argon2_memory.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.config import ROOT_DIR

SCRIPT = ROOT_DIR / "scripts" / "build-argon2-avx2.sh"
SH = shutil.which("sh") or "/bin/sh"


def _cpu_has_avx2() -> bool:
    try:
        return bool(re.search(r"\bavx2\b", Path("/proc/cpuinfo").read_text()))
    except OSError:
        return False


def _pins(path: Path) -> dict[str, list[str]]:
    """``{name==version: [hashes]}`` of a requirements file written by ``uv pip compile``."""
    pins: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+==\S+)", line):
            current = match.group(1)
            pins[current] = []
        elif current and (match := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            pins[current].append(match.group(1))
    return pins


def test_the_build_tools_are_pinned_with_hashes_and_agree_with_the_dev_pins() -> None:
    build = _pins(ROOT_DIR / "requirements-build.txt")
    dev = _pins(ROOT_DIR / "requirements-dev.txt")
    assert any(name.startswith("scikit-build-core==") for name in build)
    assert all(hashes for hashes in build.values()), build
    dev_versions = {name.split("==")[0]: name for name in dev}
    for name in build:  # the same version wherever a tool is pinned twice
        assert dev_versions.get(name.split("==")[0], name) == name
    assert "://" not in (ROOT_DIR / "requirements-build.txt").read_text()


def test_the_script_picks_the_argon2_bindings_pin_with_its_hashes(tmp_path: Path) -> None:
    # ARGON2_AVX2=1 with an interpreter that only records its arguments: what the script
    # would install, without installing it.
    recorder = tmp_path / "python"
    log = tmp_path / "calls"
    recorder.write_text(
        f'#!/bin/sh\nfor r in "$@"; do if [ -f "$r" ]; then cat "$r"; fi; done >> {log}\n'
        f'echo "$@" >> {log}\n'
    )
    recorder.chmod(0o755)
    done = subprocess.run(
        [SH, str(SCRIPT), str(recorder), "requirements-dev.txt", "requirements-build.txt"],
        cwd=ROOT_DIR,
        env={**os.environ, "ARGON2_AVX2": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text()
    assert "--require-hashes" in calls and "--no-build-isolation" in calls
    assert "--no-binary argon2-cffi-bindings" in calls
    pinned = _pins(ROOT_DIR / "requirements-dev.txt")
    name = next(n for n in pinned if n.startswith("argon2-cffi-bindings=="))
    assert name in calls
    assert all(digest in calls for digest in pinned[name])  # the sdist's hash among them
    # ARGON2_AVX2=0, or auto without cmake and a C compiler on PATH: nothing is installed
    # and the install goes on (the wheel stays).
    tools = tmp_path / "bin"  # what the script itself runs, and nothing else
    tools.mkdir()
    for tool in ("grep", "awk", "mktemp", "rm", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    for env in ({"ARGON2_AVX2": "0"}, {"ARGON2_AVX2": "auto", "PATH": str(tools)}):
        log.unlink(missing_ok=True)
        skipped = subprocess.run(
            [SH, str(SCRIPT), str(recorder), "requirements-dev.txt", "requirements-build.txt"],
            cwd=ROOT_DIR,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        assert skipped.returncode == 0, skipped.stderr
        assert not log.exists()
    if _cpu_has_avx2():
        assert "needs cmake and a C compiler" in skipped.stdout


@pytest.mark.skipif(not _cpu_has_avx2(), reason="this CPU has no AVX2: the wheel stays")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_on_an_avx2_cpu_the_installed_libargon2_holds_avx2_code() -> None:
    # argon2-cffi's compiled module (a dependency of argon2-cffi, found without importing it).
    library = importlib.util.find_spec("_argon2_cffi_bindings._ffi").origin
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The SSE2 wheel has no instruction on a 256-bit register; the AVX2 build's Argon2
    # compression function is made of them.
    assert len(re.findall(r"%ymm\d+", listing)) > 100
