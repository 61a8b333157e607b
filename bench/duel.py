"""Two source trees served at once on one CPU: ``python -m bench.duel --src OLD --src NEW``.

Each tree is served by Granian with one worker, both pinned to CPU 0 (wrk runs on CPU 1),
each from its own copy of the seeded SQLite database, and driven at the same time by its own
wrk with the same scenario and concurrency. Both servers then share one core, so whatever
else slows the machine down during a round slows both alike; the ratio of the requests they
answered is the inverse ratio of their CPU cost per request, and it holds still on a machine
whose speed drifts from minute to minute (where alternating runs of ``python -m bench`` and
even of :mod:`bench.inprocess` moved by a third for the same code).

Prints each round (requests/s, CPU ms per request and p99 of both, and the second tree's
throughput over the first's), then the medians. A round with a socket error or an
unexpected status stops the duel. The first round is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.identities import sign_in_many, write_identities
from bench.inprocess import SEED_SECRET_KEY, add_seed_option, ensure_seed
from bench.scenarios import BY_NAME, SETUPS, Scenario, WrkResult, finish_wrk, start_wrk, wrk_command
from bench.seed import SeedSize, copy_sqlite
from bench.servers import Server, Target, app_target, cpu_seconds

SECRET_KEY = SEED_SECRET_KEY
IDENTITIES = 16
USERS = SeedSize().users
#: Scenarios a duel can drive: signed-in pages and writes, and the anonymous sign-in page.
SCENARIOS = sorted(name for name, s in BY_NAME.items() if s.who in ("signed", "anon"))


@dataclass(frozen=True, slots=True)
class Round:
    """One tree's share of one round: throughput, CPU ms per request (worker) and p99 ms."""

    rps: float
    cpu_ms: float
    p99_ms: float


def _check(result: WrkResult, scenario: Scenario, src: Path) -> None:
    unexpected = sum(n for code, n in result.statuses.items() if int(code) not in scenario.expected)
    if result.socket_errors or unexpected:
        raise SystemExit(
            f"{src}: {result.socket_errors} socket errors, {unexpected} unexpected statuses"
        )


def duel(
    sources: list[Path],
    scenario: Scenario,
    concurrency: int,
    seconds: int,
    rounds: int,
    seed: Path,
    users: int = USERS,
) -> list[list[Round]]:
    """Serve ``sources`` side by side (module docstring) for a warm-up and ``rounds`` rounds
    of ``seconds`` s at ``concurrency`` each, on copies of ``seed`` (which holds ``users``
    seeded users); returns each tree's counted rounds, in order.
    Raises ``SystemExit`` when a round saw a socket error or an unexpected status."""
    setup = SETUPS["A"]  # its wrk settings: one thread on CPU 1
    servers: list[Server] = []
    try:
        data_files: list[Path | None] = []
        for src in sources:
            folder = Path(tempfile.mkdtemp(prefix="duel-"))
            copy_sqlite(seed, folder / "app.sqlite")
            target = app_target(f"sqlite+aiosqlite:///{folder / 'app.sqlite'}", SECRET_KEY, folder)
            target = Target(target.kind, target.application, target.factory, target.env, src)
            server = Server(target, workers=1, cpus="0", log_path=folder / "server.log")
            server.start()
            servers.append(server)
            if scenario.who == "anon":
                data_files.append(None)
            else:
                identities = sign_in_many(server.base_url, IDENTITIES, users)
                data_files.append(write_identities(folder / "identities.tsv", identities))
        results: list[list[Round]] = [[] for _ in sources]
        for number in range(rounds + 1):
            pids = [server.worker_pids()[0] for server in servers]
            before = [cpu_seconds(pid) or 0.0 for pid in pids]
            runs = [
                start_wrk(
                    wrk_command(setup, server.base_url, scenario, concurrency, seconds, data, users)
                )
                for server, data in zip(servers, data_files, strict=True)
            ]
            answers = [finish_wrk(run, scenario) for run in runs]
            after = [cpu_seconds(pid) or 0.0 for pid in pids]
            if number == 0:
                continue  # warm-up
            line = []
            for index, answer in enumerate(answers):
                _check(answer, scenario, sources[index])
                cpu_ms = (after[index] - before[index]) * 1000 / max(1, answer.requests)
                results[index].append(Round(answer.rps, cpu_ms, answer.p99_ms))
                line.append(f"{answer.rps:7.1f} req/s {cpu_ms:6.3f} ms p99 {answer.p99_ms:7.1f}")
            ratio = answers[1].rps / answers[0].rps if answers[0].rps else float("nan")
            print(f"round {number}: {' | '.join(line)} | second ÷ first {ratio:.3f}", flush=True)
        return results
    finally:
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.duel", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--src", action="append", type=Path, required=True, help="twice")
    parser.add_argument("--scenario", default="dashboard", choices=SCENARIOS)
    parser.add_argument("--concurrency", type=int, default=32, help="per tree")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    add_seed_option(parser)
    args = parser.parse_args(argv)
    if len(args.src) != 2:
        parser.error("give --src exactly twice: the first tree, then the one to compare")
    ensure_seed(args.seed)
    sources = [src.resolve() for src in args.src]
    results = duel(
        sources, BY_NAME[args.scenario], args.concurrency, args.seconds, args.rounds, args.seed
    )
    for src, rounds in zip(sources, results, strict=True):
        rps = statistics.median(r.rps for r in rounds)
        cpu_ms = statistics.median(r.cpu_ms for r in rounds)
        print(f"{src}: median {rps:.1f} req/s, {cpu_ms:.3f} ms of CPU per request")
    ratios = [b.rps / a.rps for a, b in zip(*results, strict=True) if a.rps]
    if ratios:
        print(
            f"second ÷ first: median {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}–{max(ratios):.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
