"""The benchmark run: seed, serve, sign in, measure in alternation, summarise.

For each set-up (A, B) and each database (SQLite; PostgreSQL when configured) the app, the
stack peer and the ceiling serve side by side. Every measured round runs the ceiling once per
concurrency level, then each scenario on the app and on the peer (their order swapping every
round), so a change in background load hits all three alike. A scenario that writes is
followed by deleting what it wrote, so every run starts from the same data.

Then, on set-up B: a login burst (logins at c=16 while signed-in pages are read, against the
same reads alone) and a soak (the 90/10 mix until ``soak_requests`` requests, RSS sampled).
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench import identities
from bench.scenarios import (
    BY_NAME,
    SCENARIOS,
    SETUPS,
    Scenario,
    Setup,
    WrkResult,
    finish_wrk,
    start_wrk,
    starved,
    wrk_command,
)
from bench.seed import (
    SeedSize,
    copy_sqlite,
    delete_since,
    drop_postgres,
    seed_postgres,
    seed_sqlite,
)
from bench.servers import (
    RSSSampler,
    Server,
    app_target,
    ceiling_target,
    peer_target,
    precompile,
)
from shared import clock

RESULTS = Path(__file__).parent / "results"
SMOKE_SECONDS = 2


class WrkMissing(RuntimeError):
    """``wrk`` is not installed (Debian package ``wrk``)."""


@dataclass(slots=True)
class Options:
    """What to run. Defaults are the published configuration (5 runs × 10 s per cell)."""

    runs: int = 5
    seconds: int = 10
    warmup: int = 3
    concurrency: tuple[int, ...] = (1, 16, 64)
    setups: tuple[str, ...] = ("A", "B")
    scenarios: tuple[str, ...] = tuple(s.name for s in SCENARIOS)
    seed: SeedSize = field(default_factory=SeedSize)
    identities: int = 32
    burst: bool = True
    soak: bool = True
    soak_requests: int = 100_000
    postgres_url: str | None = None
    output: Path = RESULTS
    work_dir: Path = Path(__file__).parent / ".work"
    update_readme: bool = True
    smoke: bool = False
    log: Any = print


def smoke_options(output: Path, postgres_url: str | None = None) -> Options:
    """The smoke preset: every scenario and target once for 2 s at c=4 on a tiny database."""
    return Options(
        runs=1,
        seconds=SMOKE_SECONDS,
        warmup=0,
        concurrency=(4,),
        setups=("B",),
        seed=SeedSize(users=8, tasks=20, notifications=5),
        identities=4,
        soak_requests=1,  # one soak run
        postgres_url=postgres_url,
        output=output,
        work_dir=output / "work",
        update_readme=False,
        smoke=True,
    )


def postgres_url_from_env() -> str | None:
    """``BENCH_DATABASE_URL`` as is, or ``TEST_DATABASE_URL`` with ``_bench`` added to its name
    (the test database itself is never touched); ``None`` when neither is set."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    test = os.environ.get("TEST_DATABASE_URL")
    if test:
        parsed = make_url(test)
        return parsed.set(database=f"{parsed.database}_bench").render_as_string(hide_password=False)
    return None


def require_wrk() -> str:
    """Path of ``wrk``; raises :class:`WrkMissing` naming the Debian package when absent."""
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing(
            "wrk is not installed: the benchmark needs the Debian package `wrk` "
            "(apt-get install wrk); see README, System packages"
        )
    return found


def machine_info() -> dict[str, Any]:
    """CPU model and count, memory, Python, Granian and wrk versions."""
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    version = (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else ""
    import granian

    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "granian": granian.__version__,
        "wrk": version.split(" [")[0],
        "kernel": platform.release(),
    }


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages (``/proc/loadavg``)."""
    return [round(x, 2) for x in os.getloadavg()]


@dataclass(slots=True)
class Block:
    """The servers and browser state of one set-up × database."""

    setup: Setup
    backend: str
    url: str
    servers: dict[str, Server]
    data: dict[str, Path]  # "<kind>:signed" / "<kind>:guest" → identities file
    cutoff: datetime
    users: int


class Runner:
    """Runs the whole benchmark for :class:`Options`; :meth:`run` returns the result dict."""

    def __init__(self, options: Options) -> None:
        self.o = options
        self.secret = "bench-secret-" + "k" * 40
        self.records: list[dict[str, Any]] = []
        self.bursts: list[dict[str, Any]] = []
        self.soaks: list[dict[str, Any]] = []

    # -- preparation -------------------------------------------------------------------------

    def seed(self) -> list[tuple[str, str, Path | None]]:
        """Seed every database once; returns ``(backend, url, sqlite seed file or None)``."""
        work = self.o.work_dir
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        seed_file = work / "seed.sqlite"
        seed_sqlite(seed_file, self.o.seed, self.secret)
        backends: list[tuple[str, str, Path | None]] = [
            ("sqlite", f"sqlite+aiosqlite:///{work / 'run.sqlite'}", seed_file)
        ]
        if self.o.postgres_url:
            seed_postgres(self.o.postgres_url, self.o.seed, self.secret)
            backends.append(("postgresql", self.o.postgres_url, None))
        self.o.log(
            f"seeded {self.o.seed.users} users × {self.o.seed.tasks} tasks on "
            f"{', '.join(b for b, _, _ in backends)} in {time.monotonic() - started:.1f} s"
        )
        return backends

    def open_block(self, setup: Setup, backend: str, url: str, seed_file: Path | None) -> Block:
        """Start app, peer and ceiling for ``setup`` on ``url``; sign users in on app and peer."""
        work = self.o.work_dir
        if seed_file is not None:
            copy_sqlite(seed_file, work / "run.sqlite")
        logs = work / "logs"
        servers: dict[str, Server] = {}
        data: dict[str, Path] = {}

        def start(kind: str, target: Any) -> Server:
            server = Server(
                target,
                workers=setup.workers,
                cpus=setup.server_cpus,
                log_path=logs / f"{setup.name}-{backend}-{kind}.log",
            )
            server.start()
            servers[kind] = server
            return server

        try:
            for kind, target in (
                ("app", app_target(url, self.secret, work)),
                ("peer", peer_target(url, self.secret)),
            ):
                server = start(kind, target)
                signed = identities.sign_in_many(
                    server.base_url, self.o.identities, self.o.seed.users
                )
                data[f"{kind}:signed"] = identities.write_identities(
                    work / f"{kind}-signed.tsv", signed
                )
                guest = identities.guest(server.base_url)
                data[f"{kind}:guest"] = identities.write_identities(
                    work / f"{kind}-guest.tsv", [identities.Identity(guest.cookie, guest.csrf)]
                )
                if kind == "app":
                    body = identities.capture(server.base_url, signed[0], "/dashboard")
                    (work / "ceiling-body.html").write_bytes(body)
            start("ceiling", ceiling_target(work / "ceiling-body.html"))
            data["ceiling:signed"] = data["app:signed"]
        except BaseException:
            for server in servers.values():
                server.stop()
            raise
        return Block(setup, backend, url, servers, data, clock.now(), self.o.seed.users)

    # -- one measured run ----------------------------------------------------------------------

    def measure(
        self,
        block: Block,
        kind: str,
        scenario: Scenario,
        concurrency: int,
        seconds: int,
        *,
        round_no: int | None,
    ) -> dict[str, Any]:
        """One ``wrk`` run of ``scenario`` against ``kind``; returns (and records) its result."""
        server = block.servers[kind]
        data = None if scenario.who == "anon" else block.data[f"{kind}:{scenario.who}"]
        command = wrk_command(
            block.setup, server.base_url, scenario, concurrency, seconds, data, block.users
        )
        before = loadavg()
        server.take_errors()
        with RSSSampler(server.worker_pids()) as rss:
            result = finish_wrk(start_wrk(command), scenario)
        server_errors = server.take_errors()
        if scenario.writes:
            asyncio.run(delete_since(block.url, block.cutoff))
        record = self._record(block, kind, scenario, concurrency, result, rss, server_errors)
        record.update(round=round_no, loadavg_before=before, loadavg_after=loadavg())
        if round_no is not None:
            self.records.append(record)
        self.o.log(
            f"  {block.setup.name}/{block.backend} {kind:7} {scenario.name:12} c={concurrency:<3}"
            f" {result.rps:9.1f} req/s p99 {result.p99_ms:8.2f} ms"
            f" cpu {record['cpu_ms_per_request']} ms/req"
            f"{'  VOID: ' + record['void_reason'] if record['void'] else ''}"
            f"  load {before[0]}"
        )
        return record

    @staticmethod
    def _record(
        block: Block,
        kind: str,
        scenario: Scenario,
        concurrency: int,
        result: WrkResult,
        rss: RSSSampler,
        server_errors: list[str],
    ) -> dict[str, Any]:
        reasons = []
        if result.requests == 0:
            reasons.append("no request completed")
        if result.socket_errors:
            reasons.append(f"{result.socket_errors} socket errors {result.errors}")
        if result.unexpected:
            reasons.append(f"{result.unexpected} unexpected statuses {result.statuses}")
        if server_errors:
            reasons.append(f"{len(server_errors)} error lines in the server log")
        held_back = starved(result, concurrency) if kind != "ceiling" else None
        if held_back:
            reasons.append(held_back)
        return {
            "setup": block.setup.name,
            "backend": block.backend,
            "target": kind,
            "scenario": scenario.name,
            "concurrency": concurrency,
            "rps": result.rps,
            "requests": result.requests,
            "seconds": result.seconds,
            "p50_ms": result.p50_ms,
            "p90_ms": result.p90_ms,
            "p99_ms": result.p99_ms,
            "max_ms": result.max_ms,
            "mean_ms": result.mean_ms,
            "served_connections": round(result.served_connections, 1),
            "errors": result.errors,
            "statuses": result.statuses,
            "unexpected": result.unexpected,
            "server_errors": server_errors[:5],
            "peak_rss_mib": rss.peak_mib,
            "cpu_ms_per_request": round(rss.cpu_seconds * 1000 / result.requests, 3)
            if result.requests
            else None,
            "void": bool(reasons),
            "void_reason": "; ".join(reasons),
        }

    # -- the alternating rounds ------------------------------------------------------------

    def levels(self, scenario: Scenario) -> tuple[int, ...]:
        if self.o.smoke:
            return self.o.concurrency
        return scenario.concurrency or self.o.concurrency

    def run_block(self, block: Block) -> None:
        """Warm every target up, then the measured rounds (ceiling, then app/peer per scenario)."""
        scenarios = [BY_NAME[name] for name in self.o.scenarios]
        dashboard = BY_NAME["dashboard"]
        self.o.log(f"set-up {block.setup.name} ({block.setup.title}), {block.backend}")
        for scenario in scenarios:
            for kind in ("app", "peer"):
                self.warm(block, kind, scenario)
        self.warm(block, "ceiling", dashboard)
        levels = sorted({c for s in scenarios for c in self.levels(s)})
        for concurrency in levels:
            for round_no in range(self.o.runs):
                if concurrency in self.o.concurrency:
                    self.measure(
                        block, "ceiling", dashboard, concurrency, self.o.seconds, round_no=round_no
                    )
                order = ("app", "peer") if round_no % 2 == 0 else ("peer", "app")
                for scenario in scenarios:
                    if concurrency not in self.levels(scenario):
                        continue
                    for kind in order:
                        self.measure(
                            block, kind, scenario, concurrency, self.o.seconds, round_no=round_no
                        )

    def warm(self, block: Block, kind: str, scenario: Scenario) -> None:
        """An unrecorded run; a warm-up that gets wrong answers stops the benchmark."""
        if self.o.warmup <= 0:
            return
        record = self.measure(
            block, kind, scenario, min(16, max(self.o.concurrency)), self.o.warmup, round_no=None
        )
        if record["unexpected"]:
            raise identities.PreparationError(
                f"{kind} answered {scenario.name} with {record['statuses']}"
            )

    # -- login burst and soak (set-up B) -----------------------------------------------------

    def run_burst(self, block: Block) -> None:
        """Signed-in reads (dashboard, c=4) alone, then while logins run at c=16; per round."""
        dashboard, login = BY_NAME["dashboard"], BY_NAME["login"]
        reads_c = 4
        logins_c = 4 if self.o.smoke else 16
        server = block.servers["app"]
        self.o.log(f"login burst on {block.backend}: dashboard c={reads_c} ± logins c={logins_c}")
        for round_no in range(self.o.runs):
            base = self.measure(block, "app", dashboard, reads_c, self.o.seconds, round_no=None)
            before = loadavg()
            reads_cmd = wrk_command(
                block.setup,
                server.base_url,
                dashboard,
                reads_c,
                self.o.seconds,
                block.data["app:signed"],
                block.users,
            )
            login_cmd = wrk_command(
                block.setup,
                server.base_url,
                login,
                logins_c,
                self.o.seconds,
                block.data["app:guest"],
                block.users,
            )
            server.take_errors()
            with RSSSampler(server.worker_pids()) as rss:
                reads_p = start_wrk(reads_cmd)
                login_p = start_wrk(login_cmd)
                reads = finish_wrk(reads_p, dashboard)
                logins = finish_wrk(login_p, login)
            server_errors = server.take_errors()
            asyncio.run(delete_since(block.url, block.cutoff))
            errors = (
                reads.socket_errors + reads.unexpected + logins.socket_errors + logins.unexpected
            )
            entry = {
                "backend": block.backend,
                "round": round_no,
                "reads_concurrency": reads_c,
                "logins_concurrency": logins_c,
                "baseline_rps": base["rps"],
                "baseline_p99_ms": base["p99_ms"],
                "baseline_void": base["void"],
                "burst_reads_rps": reads.rps,
                "burst_reads_p99_ms": reads.p99_ms,
                "burst_logins_rps": logins.rps,
                "burst_logins_p99_ms": logins.p99_ms,
                "p99_ratio": round(reads.p99_ms / base["p99_ms"], 2) if base["p99_ms"] else None,
                "peak_rss_mib": rss.peak_mib,
                "errors": errors,
                "server_errors": server_errors[:5],
                "void": bool(errors or server_errors or base["void"]),
                "loadavg_before": before,
            }
            self.bursts.append(entry)
            self.o.log(
                f"  burst round {round_no}: reads p99 {base['p99_ms']} → {reads.p99_ms} ms, "
                f"logins {logins.rps}/s, peak RSS {rss.peak_mib} MiB, errors {errors}"
            )

    def run_soak(self, block: Block) -> None:
        """The 90/10 mix at c=16 in runs of ``seconds`` until ``soak_requests`` requests."""
        mix = BY_NAME["mix"]
        server = block.servers["app"]
        total, chunks = 0, []
        concurrency = 4 if self.o.smoke else 16
        # What the login burst left queued (hashes at nice +10) finishes first: the soak
        # measures the mix alone.
        waited = server.wait_until_idle()
        self.o.log(
            f"soak on {block.backend}: mix c={concurrency} until {self.o.soak_requests}"
            f" (workers idle after {waited} s)"
        )
        while total < self.o.soak_requests:
            record = self.measure(
                block, "app", mix, concurrency, max(self.o.seconds, 1), round_no=None
            )
            total += record["requests"]
            rss = [m for m in (_rss_now(pid) for pid in server.worker_pids()) if m is not None]
            chunks.append(
                {
                    "requests_total": total,
                    "rps": record["rps"],
                    "p99_ms": record["p99_ms"],
                    "rss_after_mib": rss,
                    "peak_rss_mib": record["peak_rss_mib"],
                    "void": record["void"],
                    "void_reason": record["void_reason"],
                    "loadavg_before": record["loadavg_before"],
                }
            )
            if record["requests"] == 0:
                break
        first, last = chunks[0]["rss_after_mib"], chunks[-1]["rss_after_mib"]
        self.soaks.append(
            {
                "backend": block.backend,
                "concurrency": concurrency,
                "requests": total,
                "idle_wait_seconds": waited,
                "chunks": chunks,
                "rss_first_mib": first,
                "rss_last_mib": last,
                "growth_mib": [round(b - a, 1) for a, b in zip(first, last, strict=False)],
                "peak_rss_mib": _peaks(chunks, len(first)),
                # Steady state: the runs after the first, whose samples start while the
                # memory of whatever ran before (the login burst) is still being given back.
                "steady_peak_rss_mib": _peaks(chunks[1:] or chunks, len(first)),
                "void": any(c["void"] for c in chunks),
            }
        )

    # -- everything --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Seed, run every set-up × database, the burst and the soak; write the results."""
        require_wrk()
        precompile()
        started = datetime.now(UTC)
        meta = {
            "started": started.isoformat(timespec="seconds"),
            "machine": machine_info(),
            "loadavg_start": loadavg(),
            "options": {
                "runs": self.o.runs,
                "seconds": self.o.seconds,
                "warmup": self.o.warmup,
                "concurrency": list(self.o.concurrency),
                "setups": list(self.o.setups),
                "scenarios": list(self.o.scenarios),
                "seed": {
                    "users": self.o.seed.users,
                    "tasks": self.o.seed.tasks,
                    "notifications": self.o.seed.notifications,
                },
                "identities": self.o.identities,
                "soak_requests": self.o.soak_requests,
                "smoke": self.o.smoke,
            },
            "setups": {k: SETUPS[k].title for k in self.o.setups},
            "server": "granian --interface asgi (docker/entrypoint.sh)",
        }
        backends = self.seed()
        try:
            for name in self.o.setups:
                for backend, url, seed_file in backends:
                    block = self.open_block(SETUPS[name], backend, url, seed_file)
                    try:
                        self.run_block(block)
                        if name == "B" and (self.o.burst or self.o.soak):
                            if self.o.burst and "login" in self.o.scenarios:
                                self.run_burst(block)
                            if self.o.soak and "mix" in self.o.scenarios:
                                self.run_soak(block)
                    finally:
                        for server in block.servers.values():
                            server.stop()
        finally:
            if self.o.smoke and self.o.postgres_url:
                asyncio.run(drop_postgres(self.o.postgres_url))
        meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        meta["loadavg_end"] = loadavg()
        from bench.report import summarise

        return summarise(meta, self.records, self.bursts, self.soaks)


def _peaks(chunks: list[dict[str, Any]], workers: int) -> list[float]:
    """Per worker, the highest ``peak_rss_mib`` over ``chunks``."""
    return [
        max(c["peak_rss_mib"][i] for c in chunks if len(c["peak_rss_mib"]) > i)
        for i in range(workers)
    ]


def _rss_now(pid: int) -> float | None:
    from bench.servers import rss_kib

    value = rss_kib(pid)
    return round(value / 1024, 1) if value is not None else None
