"""Server processes under test: Granian serving the app, the stack peer or the ceiling.

Every target runs under the same command line (``python -OO -m granian --interface asgi``, as
``docker/entrypoint.sh`` serves the app) with the same worker count, optionally pinned to a set
of CPUs with ``taskset``. :func:`precompile` first writes the bytecode that command loads, as
the image is built with it. :class:`Server` finds the worker processes (the children of Granian's
main process) and :class:`RSSSampler` reads their resident set size from ``/proc`` while a run
goes on.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import ROOT_DIR

SRC = ROOT_DIR / "src"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_ERROR_LINE = re.compile(
    rb'"level": "(ERROR|CRITICAL)"|Traceback \(most recent call last\)|\[ERROR\]'
)


#: Python's flags for every server: ``-OO`` drops docstrings and ``assert`` statements, as
#: ``docker/entrypoint.sh`` serves (about 5.5 MiB less per worker).
PYTHON_FLAGS = ("-OO",)


def precompile() -> None:
    """Write the ``-OO`` bytecode (``*.opt-2.pyc``) of the installed packages and of ``src``.

    The image compiles both when it is built (Dockerfile); without it every worker would
    compile each module at start, which leaves a few MiB of the compiler's memory behind in
    its heap. Files already compiled are skipped, so only the first call takes long (about
    10 s). Raises ``subprocess.CalledProcessError`` if the compiler cannot run.
    """
    folders = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    subprocess.run(
        [sys.executable, *PYTHON_FLAGS, "-m", "compileall", "-q", "-j", "0", *folders, str(SRC)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Target:
    """What to serve: a Granian application path and its environment.

    ``kind`` is ``app``, ``peer`` or ``ceiling``; ``factory`` says whether ``application`` names
    a factory (``module:create_app``) or an ASGI callable.
    """

    kind: str
    application: str
    factory: bool
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT_DIR


def app_target(database_url: str, secret_key: str, folder: Path) -> Target:
    """Slicestar in production mode (JSON access log, OWASP Argon2id), as the image runs it."""
    return Target(
        kind="app",
        application="app:create_app",
        factory=True,
        cwd=SRC,
        env={
            "APP_ENV": "production",
            "SECRET_KEY": secret_key,
            "DATABASE_URL": database_url,
            "STORAGE_DIR": str(folder / "assets"),
            "BACKUP_DIR": str(folder / "backups"),
            # Production refuses to start without a mail transport: mail goes to a folder.
            "MAIL_URL": f"file://{folder / 'mail'}",
        },
    )


def peer_target(database_url: str, secret_key: str) -> Target:
    """The FastAPI + SQLAlchemy async ORM peer (``bench/peers/stack.py``)."""
    return Target(
        kind="peer",
        application="bench.peers.stack:create_app",
        factory=True,
        env={"PEER_DATABASE_URL": database_url, "PEER_SECRET_KEY": secret_key},
    )


def ceiling_target(body_file: Path) -> Target:
    """The bare ASGI app answering every request with the bytes in ``body_file``."""
    return Target(
        kind="ceiling",
        application="bench.peers.ceiling:create_app",
        factory=True,
        env={"CEILING_BODY_FILE": str(body_file)},
    )


class Server:
    """One Granian server (``workers`` processes) for ``target`` on a free port of 127.0.0.1.

    ``cpus`` (e.g. ``"0"``) pins the server and its workers with ``taskset``. Output goes to
    ``log_path`` (opened for appending, so :meth:`take_errors` can truncate it between runs).
    """

    def __init__(self, target: Target, *, workers: int, cpus: str | None, log_path: Path) -> None:
        self.target = target
        self.workers = workers
        self.cpus = cpus
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line (with ``taskset`` when pinned)."""
        command = [
            sys.executable,
            *PYTHON_FLAGS,
            "-m",
            "granian",
            "--interface",
            "asgi",
            *(["--factory"] if self.target.factory else []),
            self.target.application,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--workers-kill-timeout",
            "10",
        ]
        return (["taskset", "-c", self.cpus] if self.cpus else []) + command

    def start(self, timeout: float = 60) -> None:
        """Start and wait until ``/healthz`` answers 200 and every worker process exists."""
        env = {
            **os.environ,
            "APP_URL": self.base_url,
            "PYTHONPATH": os.pathsep.join([str(SRC), str(ROOT_DIR)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            # As docker/entrypoint.sh serves (every target alike): huge pages for malloc's
            # mmapped blocks, so large blocks go back to the OS and come again cheaply.
            "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"),
            "WEB_CONCURRENCY": str(self.workers),  # as the entrypoint's `--workers`
            **self.target.env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.target.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._healthy() and len(self.worker_pids()) >= self.workers:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_bytes()[-3000:].decode(errors="replace")
                self.stop()
                raise RuntimeError(f"{self.target.kind} server did not start:\n{tail}")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The pids of Granian's worker processes (children of the main process)."""
        if self.process is None:
            return []
        return children_of(self.process.pid)

    def wait_until_idle(
        self, *, quiet: float = 1.0, busy_share: float = 0.05, timeout: float = 60.0
    ) -> float:
        """Wait until the workers have used less than ``busy_share`` of one CPU for ``quiet``
        seconds in a row (work left over from the previous run, such as queued password
        hashes, has finished), at most ``timeout`` seconds. Returns the seconds waited."""
        started = previous_at = time.monotonic()
        previous = _cpu_of(self.worker_pids())
        quiet_since = started
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            used = _cpu_of(self.worker_pids())
            if used - previous > busy_share * (now - previous_at):
                quiet_since = now
            previous, previous_at = used, now
            if now - quiet_since >= quiet or now - started >= timeout:
                return round(now - started, 2)

    def take_errors(self) -> list[str]:
        """Error lines the server logged since the last call (then the log is emptied)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        os.truncate(self.log_path, 0)
        return [
            line.decode(errors="replace")[:500]
            for line in data.splitlines()
            if _ERROR_LINE.search(line)
        ]

    def stop(self) -> None:
        """SIGTERM the server, then SIGKILL its process group if it has not exited in 20 s."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.process = None


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (read from ``/proc/<pid>/stat``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields follow the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def rss_kib(pid: int) -> int | None:
    """The resident set size of ``pid`` in KiB (``VmRSS``), or ``None`` if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (all its threads) in seconds, or ``None`` if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _cpu_of(pids: list[int]) -> float:
    return sum(c for c in (cpu_seconds(p) for p in pids) if c is not None)


class RSSSampler:
    """Samples the RSS of ``pids`` every ``interval`` seconds in a thread while in a ``with``.

    ``peak_mib`` is the highest sample per worker (MiB, rounded to 0.1); ``last_mib`` the last.
    ``cpu_seconds`` is the CPU time the workers used inside the block (all threads): divided
    by the requests served it gives the CPU cost of a request, which a busy machine disturbs
    far less than it disturbs throughput.
    """

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        self.pids = pids
        self.interval = interval
        self.peak: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_start = 0.0
        self.cpu_seconds = 0.0

    def _cpu(self) -> float:
        return _cpu_of(self.pids)

    def _sample(self) -> None:
        for pid in self.pids:
            value = rss_kib(pid)
            if value is not None:
                self.last[pid] = value
                self.peak[pid] = max(value, self.peak.get(pid, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RSSSampler:
        self._sample()
        self._cpu_start = self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cpu_seconds = round(self._cpu() - self._cpu_start, 2)
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mib(self) -> list[float]:
        return [round(self.peak[p] / 1024, 1) for p in sorted(self.peak)]

    @property
    def last_mib(self) -> list[float]:
        return [round(self.last[p] / 1024, 1) for p in sorted(self.last)]
