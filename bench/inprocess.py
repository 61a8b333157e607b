"""CPU cost of one page, in process: ``python -m bench.inprocess [--src DIR ...] [PATH ...]``.

For each source tree (default: this checkout's ``src``) a fresh interpreter builds the app on a
copy of the seeded database, signs a seeded user in, then requests each path ``--requests``
times through the ASGI interface (``httpx.ASGITransport``, no server, no sockets) and reports
the process CPU time per request. Trees are run in alternation for ``--rounds`` rounds and
the median is reported, next to a fixed pure-Python loop timed in the same process
(``calibration_ms``), so a comparison stays fair on a machine other work slows down.

This is how an optimisation is judged before it is committed: run it with ``--src`` pointing
at a checkout of the previous commit and at this one. The load test (``python -m bench``)
remains the measure of throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, os, re, shutil, sys, time
src, db, paths, n = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
sys.path[:0] = [src, os.path.dirname(src)]
import httpx
from app import create_app
from shared.config import Settings
from bench.seed import PASSWORD, email_of

def calibrate():
    started = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.process_time() - started) * 1000

settings = Settings(app_env="production", secret_key="k" * 48, database_url=f"sqlite+aiosqlite:///{db}",
                    app_url="http://t", log_level="WARNING",
                    mail_url="file://" + os.path.join(os.path.dirname(db), "mail"))
app = create_app(settings)

async def main():
    out = {"calibration_ms": calibrate()}
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = await client.get("/login")
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
            answer = await client.post("/login", data={"email": email_of(3), "password": PASSWORD,
                                                       "_csrf_token": token})
            assert answer.status_code == 303, answer.status_code
            for path in paths:
                guest = path.startswith("anon:")
                target = path.removeprefix("anon:")
                cookies = {} if guest else None
                async def get():
                    if guest:
                        async with httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
                            return await anon.get(target)
                    return await client.get(target)
                for _ in range(max(20, n // 10)):
                    answer = await get()
                    assert answer.status_code == 200, (target, answer.status_code)
                started = time.process_time()
                for _ in range(n):
                    await get()
                out[path] = (time.process_time() - started) * 1000 / n
    out["calibration_end_ms"] = calibrate()
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


def measure(src: Path, seed: Path, paths: list[str], requests: int) -> dict[str, float]:
    """One fresh process for ``src``: CPU ms per request of each path, and the calibration."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "app.sqlite"
        db.write_bytes(seed.read_bytes())
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LOG_LEVEL": "WARNING"}
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(src.resolve()),
                str(db),
                ",".join(paths),
                str(requests),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"measurement of {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


SEED_SECRET_KEY = "bench-secret-" + "k" * 40


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    """``--seed``: the seeded SQLite database the comparisons copy (default
    ``bench/.work/seed.sqlite``, which ``python -m bench`` also writes)."""
    parser.add_argument(
        "--seed",
        type=Path,
        default=ROOT / "bench" / ".work" / "seed.sqlite",
        help="a seeded database (python -m bench writes bench/.work/seed.sqlite)",
    )


def ensure_seed(seed: Path) -> None:
    """Seed ``seed`` (the default size) unless it exists."""
    if not seed.exists():
        from bench.seed import SeedSize, seed_sqlite

        seed_sqlite(seed, SeedSize(), SEED_SECRET_KEY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inprocess", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "paths",
        nargs="*",
        default=["/dashboard", "/tasks?q=report", "anon:/login"],
        help="paths to request (anon:/path for a request without cookies)",
    )
    parser.add_argument("--src", action="append", type=Path, help="a source tree (repeatable)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    add_seed_option(parser)
    args = parser.parse_args(argv)
    sources = args.src or [ROOT / "src"]
    ensure_seed(args.seed)
    results: dict[Path, list[dict[str, float]]] = {s: [] for s in sources}
    for _ in range(args.rounds):
        for src in sources:
            results[src].append(measure(src, args.seed, args.paths, args.requests))
    for src, rounds in results.items():
        print(f"{src}:")
        for key in ["calibration_ms", *args.paths]:
            values = [r[key] for r in rounds]
            print(
                f"  {key:24} median {statistics.median(values):8.3f} ms"
                f"  ({', '.join(f'{v:.3f}' for v in values)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
