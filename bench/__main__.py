"""``python -m bench`` — run the benchmark (see ``--help``; ``make bench`` runs the defaults).

Environment: ``BENCH_RUNS``, ``BENCH_SECONDS``, ``BENCH_WARMUP``, ``BENCH_CONCURRENCY``
(e.g. ``1,16,64``), ``BENCH_SETUPS`` (``A,B``), ``BENCH_SCENARIOS`` override the defaults;
``BENCH_DATABASE_URL`` (or ``TEST_DATABASE_URL``, with ``_bench`` added to the database name)
adds PostgreSQL. Command-line options win over the environment.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from bench.report import write
from bench.run import Options, Runner, WrkMissing, postgres_url_from_env, smoke_options
from bench.scenarios import BY_NAME
from bench.seed import SeedSize


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    env = os.environ.get
    defaults = Options()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--smoke", action="store_true", help="every scenario once for 2 s on a tiny database"
    )
    p.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", defaults.runs)))
    p.add_argument("--seconds", type=int, default=int(env("BENCH_SECONDS", defaults.seconds)))
    p.add_argument("--warmup", type=int, default=int(env("BENCH_WARMUP", defaults.warmup)))
    p.add_argument("--concurrency", type=_ints, default=_ints(env("BENCH_CONCURRENCY", "1,16,64")))
    p.add_argument("--setups", type=_names, default=_names(env("BENCH_SETUPS", "A,B")))
    p.add_argument(
        "--scenarios", type=_names, default=_names(env("BENCH_SCENARIOS", ",".join(BY_NAME)))
    )
    p.add_argument("--users", type=int, default=defaults.seed.users)
    p.add_argument("--tasks", type=int, default=defaults.seed.tasks)
    p.add_argument("--identities", type=int, default=defaults.identities)
    p.add_argument("--soak-requests", type=int, default=defaults.soak_requests)
    p.add_argument("--no-burst", action="store_true")
    p.add_argument("--no-soak", action="store_true")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only, even if a URL is set")
    p.add_argument(
        "--output", type=Path, default=None, help="results folder (default bench/results)"
    )
    p.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in BY_NAME]
    if unknown:
        p.error(f"unknown scenarios {unknown}; choose from {', '.join(BY_NAME)}")
    postgres = None if args.no_postgres else postgres_url_from_env()
    if args.smoke:
        output = args.output or Path(tempfile.mkdtemp(prefix="bench-smoke-"))
        if postgres:
            postgres = (
                postgres.rsplit("/", 1)[0] + f"/{postgres.rsplit('/', 1)[1]}_smoke{os.getpid()}"
            )
        return smoke_options(output, postgres), args
    options = Options(
        runs=args.runs,
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        setups=args.setups,
        scenarios=args.scenarios,
        seed=SeedSize(users=args.users, tasks=args.tasks),
        identities=args.identities,
        burst=not args.no_burst,
        soak=not args.no_soak,
        soak_requests=args.soak_requests,
        postgres_url=postgres,
        update_readme=not args.no_readme,
    )
    if args.output:
        options.output = args.output
    return options, args


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so every started server is stopped


def main(argv: list[str] | None = None) -> int:
    # SIGTERM, and SIGINT even when a background shell ignored it, stop the servers cleanly.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    options, _ = parse(sys.argv[1:] if argv is None else argv)
    try:
        result = Runner(options).run()
    except WrkMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    json_path, md_path = write(result, options.output, update_readme=options.update_readme)
    print(md_path.read_text())
    print(f"results: {json_path}")
    void = sum(1 for r in result["runs"] if r["void"])
    if options.smoke and void:
        print(f"error: {void} voided runs in the smoke run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
