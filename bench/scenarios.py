"""The scenarios, the two set-ups, and one ``wrk`` run.

Each scenario names the ``bench/lua/scenario.lua`` mode that drives it, the status codes a
correct answer has (anything else, or any socket error, voids the run) and whether it writes
(the harness then deletes what the run wrote before the next one).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.seed import PASSWORD, SEARCH_WORD

LUA = Path(__file__).parent / "lua" / "scenario.lua"
WRK_TIMEOUT = "5s"  # a request slower than this counts as a (timeout) error


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of traffic.

    ``who``: ``signed`` (session cookies + CSRF tokens), ``guest`` (a guest CSRF cookie),
    ``anon`` (no cookie at all). ``concurrency``: the levels it runs at, ``None`` for the
    configured default list.
    """

    name: str
    title: str
    mode: str
    args: tuple[str, ...]
    who: str
    expected: frozenset[int]
    writes: bool = False
    concurrency: tuple[int, ...] | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("signin", "Anonymous sign-in page", "anon", ("/login",), "anon", frozenset({200})),
    Scenario(
        "dashboard", "Signed-in dashboard", "get", ("/dashboard",), "signed", frozenset({200})
    ),
    Scenario(
        "tasks_search",
        f"Task list, search “{SEARCH_WORD}”",
        "get",
        (f"/tasks?q={SEARCH_WORD}",),
        "signed",
        frozenset({200}),
    ),
    Scenario(
        "task_create",
        "Task create (POST, 303)",
        "create",
        ("/tasks", "Benchmark task"),
        "signed",
        frozenset({303}),
        writes=True,
    ),
    Scenario(
        "login",
        "Sign-in (Argon2id, 303)",
        "login",
        ("{users}", PASSWORD),
        "guest",
        frozenset({303}),
        writes=True,
        concurrency=(4, 16),
    ),
    Scenario(
        "mix",
        "Mix 90 % reads / 10 % writes",
        "mix",
        ("/dashboard", f"/tasks?q={SEARCH_WORD}", "10"),
        "signed",
        frozenset({200, 303}),
        writes=True,
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True, slots=True)
class Setup:
    """How server and load generator share the machine.

    A "per core": one worker pinned to CPU 0, wrk (one thread) pinned to CPU 1.
    B "whole machine": two workers and wrk (two threads), nothing pinned.
    """

    name: str
    title: str
    workers: int
    server_cpus: str | None
    wrk_cpus: str | None
    wrk_threads: int


SETUPS = {
    "A": Setup("A", "per core: 1 worker on CPU 0, wrk on CPU 1", 1, "0", "1", 1),
    "B": Setup("B", "whole machine: 2 workers, unpinned", 2, None, None, 2),
}


@dataclass(slots=True)
class WrkResult:
    """What one ``wrk`` run measured (latencies in ms, throughput in requests/s)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    statuses: dict[str, int]
    unexpected: int = 0
    mean_ms: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_errors(self) -> int:
        e = self.errors
        return e["connect"] + e["read"] + e["write"] + e["timeout"]

    @property
    def served_connections(self) -> float:
        """How many connections had a request in service on average: throughput × mean
        latency (Little's law). About ``concurrency`` when the server answers every
        connection in turn; far below it when the server holds some connections back, whose
        unfinished requests then count in no latency figure."""
        return self.rps * self.mean_ms / 1000


#: Below this share of the connections in service (``served_connections ÷ concurrency``) a
#: run of a server-bound target is void: its latencies describe only the connections served.
MIN_SERVED_SHARE = 0.5


def starved(result: WrkResult, concurrency: int) -> str | None:
    """Why ``result`` cannot stand for all ``concurrency`` connections, or ``None``.

    wrk reports the latency of finished requests only. A server that keeps answering a few
    connections while the others wait (Granian's ``--backpressure`` below the concurrency
    did: 413 req/s with a p99 of 35 ms at c=64, which Little's law allows for about 9
    connections) shows latencies no client waiting on the others saw. Meaningful for the app
    and the peer, which are slower than wrk; the ceiling answers faster than wrk sends, so
    wrk's own time keeps its figure low.
    """
    if concurrency <= 1 or result.requests == 0:
        return None
    served = result.served_connections
    if served >= MIN_SERVED_SHARE * concurrency:
        return None
    return (
        f"only about {served:.0f} of {concurrency} connections were in service "
        f"(req/s × mean latency): the others waited unanswered"
    )


def wrk_command(
    setup: Setup,
    url: str,
    scenario: Scenario,
    concurrency: int,
    seconds: int,
    data_file: Path | None,
    users: int,
) -> list[str]:
    """The ``wrk`` command line for one run of ``scenario``."""
    args = [a.replace("{users}", str(users)) for a in scenario.args]
    threads = max(1, min(setup.wrk_threads, concurrency))
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA),
        url,
        "--",
        scenario.mode,
        str(data_file) if data_file else "-",
        *args,
    ]
    return (["taskset", "-c", setup.wrk_cpus] if setup.wrk_cpus else []) + command


def start_wrk(command: list[str]) -> subprocess.Popen[str]:
    """Start ``wrk`` (output captured)."""
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )


def finish_wrk(process: subprocess.Popen[str], scenario: Scenario) -> WrkResult:
    """Wait for ``wrk`` and parse the JSON line the Lua ``done()`` hook printed."""
    out, err = process.communicate()
    line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    lat = data["latency_us"]
    statuses = {str(k): int(v) for k, v in data["statuses"].items()}
    unexpected = sum(n for code, n in statuses.items() if int(code) not in scenario.expected)
    return WrkResult(
        requests=data["requests"],
        seconds=round(seconds, 3),
        rps=round(data["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(lat["p50"] / 1000, 2),
        p90_ms=round(lat["p90"] / 1000, 2),
        p99_ms=round(lat["p99"] / 1000, 2),
        max_ms=round(lat["max"] / 1000, 2),
        mean_ms=round(lat["mean"] / 1000, 3),
        errors=data["errors"],
        statuses=statuses,
        unexpected=unexpected,
        raw=data,
    )
