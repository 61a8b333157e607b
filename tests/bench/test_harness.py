"""The benchmark harness runs end to end (``python -m bench --smoke``).

No timing is asserted here (speed is measured by ``make bench``, never by tests): the smoke
run must seed, serve the app, the stack peer and the ceiling with Granian, drive every
scenario with wrk, and write a well-formed result in which no run saw an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import duel
from bench.run import WrkMissing, require_wrk
from bench.scenarios import BY_NAME, WrkResult, starved
from bench.seed import SeedSize, seed_sqlite
from bench.servers import Server, ceiling_target
from shared.config import ROOT_DIR

WRK_MISSING = (
    "wrk is not installed: the benchmark smoke test needs the Debian package `wrk` "
    "(apt-get install wrk; README, System packages)"
)


def test_missing_wrk_is_reported_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(WrkMissing, match=r"Debian package `wrk`"):
        require_wrk()


def _wrk_result(rps: float, mean_ms: float) -> WrkResult:
    no_errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    return WrkResult(
        requests=int(rps * 4), seconds=4.0, rps=rps, p50_ms=mean_ms, p90_ms=mean_ms,
        p99_ms=mean_ms, max_ms=mean_ms, errors=no_errors, statuses={"200": int(rps * 4)},
        mean_ms=mean_ms,
    )  # fmt: skip


def test_a_run_whose_latencies_cover_few_connections_is_void() -> None:
    # Measured with Granian's --backpressure 4 at c=64: 413 req/s, mean latency about 21 ms,
    # so about 9 connections were in service; the other 55 waited unanswered.
    reason = starved(_wrk_result(413.1, 21.0), 64)
    assert reason is not None and "about 9 of 64 connections" in reason
    # Every connection in turn: 428 req/s at c=64 means about 150 ms each (Little's law).
    assert starved(_wrk_result(428.0, 149.5), 64) is None
    assert starved(_wrk_result(1309.0, 0.5), 1) is None  # one connection is always served


def test_the_soak_waits_until_the_workers_are_idle(tmp_path: Path) -> None:
    # A "worker" busy for 1.5 s (as with hashes the login burst left queued), then idle.
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\ntime.sleep(30)"]
    )  # fmt: skip
    try:
        server = Server(
            ceiling_target(tmp_path / "body"), workers=1, cpus=None, log_path=tmp_path / "log"
        )
        server.worker_pids = lambda: [busy.pid]  # type: ignore[method-assign]
        waited = server.wait_until_idle(quiet=1.0, timeout=20)
    finally:
        busy.kill()
        busy.wait()
    assert 1.0 + 1.0 <= waited < 20  # the busy part (after start-up), then a quiet second


def test_smoke_run_produces_a_well_formed_result_without_errors(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail(WRK_MISSING)
    readme_before = (ROOT_DIR / "README.md").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(tmp_path)],
        cwd=ROOT_DIR,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    [json_file] = tmp_path.glob("*.json")
    result = json.loads(json_file.read_text())
    backends = {"sqlite"} | ({"postgresql"} if os.environ.get("TEST_DATABASE_URL") else set())
    meta = result["meta"]
    assert meta["options"]["smoke"] is True
    assert meta["machine"]["cpus"] >= 1 and meta["machine"]["cpu_model"]
    assert len(meta["loadavg_start"]) == 3

    # Every scenario ran on the app and the peer, and the ceiling ran, on every backend.
    cells = {(s["backend"], s["scenario"], s["target"]) for s in result["summary"]}
    for backend in backends:
        for scenario in BY_NAME:
            assert (backend, scenario, "app") in cells
            assert (backend, scenario, "peer") in cells
        assert (backend, "dashboard", "ceiling") in cells

    for run in result["runs"]:
        assert run["void"] is False, run
        assert run["requests"] > 0 and run["rps"] > 0
        assert sum(run["errors"].values()) == 0 and run["unexpected"] == 0
        assert set(map(int, run["statuses"])) <= BY_NAME[run["scenario"]].expected
        assert run["peak_rss_mib"] and all(m > 0 for m in run["peak_rss_mib"])
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert 0 < run["mean_ms"] <= run["max_ms"] and run["served_connections"] > 0
        assert len(run["loadavg_before"]) == 3
    for cell in result["summary"]:
        if cell["target"] == "app":
            assert cell["vs_peer"] > 0 and cell["vs_ceiling"] > 0
    assert {b["backend"] for b in result["burst"]} == backends
    assert all(b["errors"] == 0 and b["burst_logins_rps"] > 0 for b in result["burst"])
    assert {s["backend"] for s in result["soak"]} == backends
    assert all(s["requests"] > 0 and not s["void"] for s in result["soak"])
    assert all(0 < s["idle_wait_seconds"] < 60 for s in result["soak"])
    assert all(0 < max(s["steady_peak_rss_mib"]) <= max(s["peak_rss_mib"]) for s in result["soak"])
    assert result["targets"], "the targets table is filled"

    markdown = (tmp_path / "latest.md").read_text()
    assert "Signed-in dashboard" in markdown and "**Targets**" in markdown
    assert (ROOT_DIR / "README.md").read_text() == readme_before  # smoke never publishes


def test_a_duel_serves_two_trees_side_by_side_and_counts_both(tmp_path: Path) -> None:
    # bench.duel: two trees (here the same one twice) served at once, one round after the
    # warm-up; both answered without errors and both CPU costs were read from /proc.
    if shutil.which("wrk") is None:
        pytest.fail(WRK_MISSING)
    seed = tmp_path / "seed.sqlite"
    seed_sqlite(seed, SeedSize(users=20, tasks=10, notifications=2), duel.SECRET_KEY)
    src = ROOT_DIR / "src"
    results = duel.duel([src, src], BY_NAME["dashboard"], 2, 1, 1, seed, users=20)
    assert len(results) == 2
    for rounds in results:
        [counted] = rounds
        assert counted.rps > 0 and counted.cpu_ms > 0 and counted.p99_ms > 0
