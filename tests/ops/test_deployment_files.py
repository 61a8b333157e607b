"""The Docker deployment, checked without Docker (no engine on this machine kind).

- ``docker/entrypoint.sh`` is run directly, against a temporary ``db`` folder: it migrates
  once (several at the same time too) and then runs its command; a failed migration stops it.
- ``docker/healthcheck.py`` (the image's HEALTHCHECK) is run against a real server.
- ``docker-compose.yml`` is parsed: the ``./db`` volume, the health check, the restart policy,
  the read-only root file system, the ``postgres`` profile.
- ``.env.example`` names every setting of ``shared.config.Settings`` and nothing unknown, and
  parses into ``Settings``.
- The Dockerfile's commands (and the entrypoint's server command) appear verbatim in the README.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from shared.config import ROOT_DIR, Settings
from shared.database.migrations import head_revision
from tests.conftest import SECRET_KEY
from tests.ops.server import AppProcess, free_port

ENTRYPOINT = ROOT_DIR / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT_DIR / "docker" / "healthcheck.py"
README = (ROOT_DIR / "README.md").read_text()
DOCKERFILE = (ROOT_DIR / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT_DIR / "docker-compose.yml").read_text())
ENV_EXAMPLE = ROOT_DIR / ".env.example"


def _run_entrypoint(db_dir: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    venv_bin = str(Path(sys.executable).parent)
    return subprocess.run(
        [str(ENTRYPOINT), *command],
        env={
            **os.environ,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "DB_DIR": str(db_dir),
            "DATABASE_URL": f"sqlite+aiosqlite:///{db_dir / 'app.sqlite'}",
            "APP_ENV": "production",
            "SECRET_KEY": SECRET_KEY,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _revision(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        conn.close()


def test_entrypoint_migrates_then_runs_its_command(tmp_path: Path) -> None:
    result = _run_entrypoint(tmp_path, "python", "-c", "print('command ran')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("command ran")
    assert _revision(tmp_path / "app.sqlite") == head_revision(ROOT_DIR / "alembic.ini")
    assert (tmp_path / ".migrate.lock").exists()


def test_entrypoint_started_four_times_at_once_migrates_safely(tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: _run_entrypoint(tmp_path, "true"), range(4)),
        )
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    conn = sqlite3.connect(tmp_path / "app.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    finally:
        conn.close()
    assert _revision(tmp_path / "app.sqlite") == head_revision(ROOT_DIR / "alembic.ini")


def test_entrypoint_waits_for_the_migration_lock_held_by_another_container(tmp_path: Path) -> None:
    # Another container migrating holds db/.migrate.lock: this one must not migrate or serve.
    fd = os.open(tmp_path / ".migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = _run_entrypoint(
            tmp_path, "python", "-c", "print('command ran')", MIGRATE_LOCK_TIMEOUT="1"
        )
    finally:
        os.close(fd)
    assert result.returncode != 0
    assert "command ran" not in result.stdout
    assert not (tmp_path / "app.sqlite").exists()


def test_entrypoint_stops_when_the_migration_fails(tmp_path: Path) -> None:
    (tmp_path / "app.sqlite").write_bytes(b"this is not a database" * 100)
    result = _run_entrypoint(tmp_path, "python", "-c", "print('command ran')")
    assert result.returncode != 0
    assert "command ran" not in result.stdout


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_entrypoint_serves_with_two_granian_workers_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    """The image's default command, run as the container runs it (a fresh, empty ``db``)."""
    port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    process = subprocess.Popen(
        [str(ENTRYPOINT)],
        env={
            **os.environ,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "DB_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}",
            "STORAGE_DIR": str(tmp_path / "assets"),
            "APP_ENV": "production",
            "MAIL_URL": f"file://{tmp_path / 'mail'}",  # production refuses to start without
            "APP_URL": f"http://127.0.0.1:{port}",
            "SECRET_KEY": SECRET_KEY,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "GRACEFUL_TIMEOUT": "5",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        env = {**os.environ, "PORT": str(port)}
        deadline = time.monotonic() + 60
        while not _answers(f"http://127.0.0.1:{port}/healthz"):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        # What Docker's HEALTHCHECK runs:
        assert subprocess.run([sys.executable, HEALTHCHECK], env=env).returncode == 0
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200, ready.text
        process.send_signal(signal.SIGTERM)  # the entrypoint exec'd Granian: it gets the signal
        assert process.wait(timeout=20) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    output = process.stdout.read().decode()
    assert output.count("Started worker") == 2, output
    wal = tmp_path / "app.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_healthcheck_script_reports_the_servers_liveness(ops_dir: Path) -> None:
    server = AppProcess(ops_dir)
    server.start()
    try:
        env = {**os.environ, "PORT": str(server.port)}
        assert subprocess.run([sys.executable, HEALTHCHECK], env=env).returncode == 0
    finally:
        server.terminate()
    assert subprocess.run([sys.executable, HEALTHCHECK], env=env).returncode == 1


def test_compose_mounts_db_checks_health_restarts_and_has_a_postgres_profile() -> None:
    app = COMPOSE["services"]["app"]
    assert "./db:/app/db" in app["volumes"]
    assert app["volumes"] == ["./db:/app/db"]  # the only writable place…
    assert app["read_only"] is True  # …the container's own file system is read-only
    assert app["restart"] == "unless-stopped"
    assert app["env_file"] == ".env"
    assert "/app/docker/healthcheck.py" in app["healthcheck"]["test"]
    assert "/healthz" in HEALTHCHECK.read_text()
    assert app["environment"]["DATABASE_URL"].endswith(":-sqlite+aiosqlite:////app/db/app.sqlite}")
    assert app["environment"]["STORAGE_DIR"].startswith("/app/db/")
    assert app["environment"]["BACKUP_DIR"].startswith("/app/db/")
    # Docker waits longer than Granian's own graceful-shutdown bound before SIGKILL.
    grace = int(app["stop_grace_period"].rstrip("s"))
    assert grace > int(re.search(r"GRACEFUL_TIMEOUT=(\d+)", DOCKERFILE).group(1))
    postgres = COMPOSE["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["volumes"] == ["./db/postgres:/var/lib/postgresql/data"]
    assert app["depends_on"]["postgres"]["required"] is False


def _env_example() -> dict[str, str]:
    """The variables ``.env.example`` sets (not the commented-out ones)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def _env_example_commented() -> set[str]:
    """Variables listed commented out (``# NAME=default``): the default applies."""
    return set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def _documented_in_readme() -> set[str]:
    section = README.split("## Deployment with Docker", 1)[1]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))


def test_env_example_names_every_setting_and_only_known_variables() -> None:
    names = set(_env_example())
    settings = {name.upper() for name in Settings.model_fields}
    listed = names | _env_example_commented()
    assert settings - listed == set(), "add these settings to .env.example"
    unknown = names - settings - _documented_in_readme()
    assert unknown == set(), "document these in README (Deployment with Docker) or drop them"


def test_env_example_parses_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=ENV_EXAMPLE, secret_key=SECRET_KEY)  # type: ignore[call-arg]
    assert settings.app_env == "production"
    assert settings.database_url == "sqlite+aiosqlite:////app/db/app.sqlite"
    assert str(settings.storage_dir).startswith("/app/db/")
    assert str(settings.backup_dir).startswith("/app/db/")


def test_dockerfile_is_multi_stage_hash_pinned_non_root_with_db_volume() -> None:
    assert len(re.findall(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)) >= 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE, flags=re.MULTILINE)
    assert "--require-hashes" in DOCKERFILE
    user = re.search(r"^USER (\S+)", DOCKERFILE, flags=re.MULTILINE).group(1)
    assert user.split(":")[0] not in ("root", "0")
    assert 'VOLUME ["/app/db"]' in DOCKERFILE
    assert re.search(r"^HEALTHCHECK .*docker/healthcheck\.py", DOCKERFILE, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["/app/docker/entrypoint.sh"]' in DOCKERFILE


def test_readme_shows_the_same_commands_as_the_dockerfile_and_entrypoint() -> None:
    run_lines = re.findall(r"^RUN (/opt/venv/bin/pip install .+)$", DOCKERFILE, flags=re.MULTILINE)
    assert run_lines
    serve = re.search(r"^\s*exec (granian .+)$", ENTRYPOINT.read_text(), flags=re.MULTILINE)
    migrate = re.search(r"^\s*(flock .+alembic upgrade head)$", ENTRYPOINT.read_text(), re.M)
    for command in [*run_lines, serve.group(1), migrate.group(1)]:
        assert command in README, f"README must show: {command}"
    for usage in re.findall(r"^#   (docker .+?)(?:\s{2,}#.*)?$", DOCKERFILE, flags=re.MULTILINE):
        assert usage.strip() in README, f"README must show: {usage}"
