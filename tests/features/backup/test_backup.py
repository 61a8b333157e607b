"""Backups and restores (SECURITY.md R6) with real files, real processes and the real CLI."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tarfile
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

from app import create_app
from features.backup.cli import backup_command, restore_command
from features.backup.schedule import scheduled_backups
from features.backup.service import (
    BackupError,
    backup_if_due,
    create_backup,
    list_backups,
    restore_backup,
)
from shared.config import ROOT_DIR, Settings
from shared.database.migrations import head_revision
from tests.conftest import SECRET_KEY, TEST_DATABASE_URL
from tests.ops.server import (
    AppProcess,
    check_database,
    signed_in_client,
    signed_in_with_password,
    task_titles,
)
from tests.support import DEFAULT_PASSWORD, pg_admin_execute, pg_url_with_database

README = (ROOT_DIR / "README.md").read_text()


def _png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _settings(folder: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "test",
        "secret_key": SECRET_KEY,
        "database_url": f"sqlite+aiosqlite:///{folder / 'app.sqlite'}",
        "app_url": "http://testserver.local",
        "storage_dir": folder / "assets",
        "backup_dir": folder / "backups",
    }
    return Settings(**{**values, **changes})


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``litestar --app-dir src db …`` as an operator runs it, for the database in ``folder``."""
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'app.sqlite'}",
        "STORAGE_DIR": str(folder / "assets"),
        "BACKUP_DIR": str(folder / "backups"),
    }
    litestar = Path(sys.executable).parent / "litestar"
    return subprocess.run(
        [str(litestar), "--app-dir", "src", "db", *args],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_r6_backup_under_write_load_restores_into_a_fresh_folder_and_the_app_boots(
    ops_dir: Path, tmp_path_factory
) -> None:
    server = AppProcess(ops_dir)
    server.start()
    acknowledged: list[str] = []
    stop = threading.Event()
    try:
        client, token = signed_in_client(server, "r6@example.com")
        # A real asset, uploaded through the app as the page's script does.
        uploaded = client.post(
            "/assets",
            files={"file": ("teal.png", _png("teal"), "image/png")},
            headers={"X-CSRF-Token": token, "Accept": "application/json"},
        )
        assert uploaded.status_code == 201, uploaded.text
        asset_id = uploaded.json()["assets"][0]["id"]
        served = client.get(f"/assets/{asset_id}/file")
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"

        def write() -> None:
            with httpx.Client(base_url=server.base_url, cookies=client.cookies) as http:
                n = 0
                while not stop.is_set():
                    title = f"task {n}"
                    response = http.post("/tasks", data={"title": title, "_csrf_token": token})
                    assert response.status_code == 303
                    acknowledged.append(title)
                    n += 1

        writer = threading.Thread(target=write)
        writer.start()
        while len(acknowledged) < 20:
            await asyncio.sleep(0.01)
        before_backup = set(acknowledged)
        result = await asyncio.to_thread(_cli, ops_dir, "backup")
        during_backup = len(acknowledged)
        while len(acknowledged) < during_backup + 10:  # writes go on after the backup
            await asyncio.sleep(0.01)
        stop.set()
        writer.join(timeout=10)
    finally:
        stop.set()
        server.terminate()
    assert result.returncode == 0, result.stderr
    assert "integrity_check ok" in result.stdout
    assert "2 asset files" in result.stdout  # the WebP rendition and its thumbnail
    archives = list_backups(ops_dir / "backups")
    assert len(archives) == 1
    assert oct(archives[0].stat().st_mode & 0o777) == "0o600"

    # Restore into an empty folder, as on a new machine, with the operator's command.
    fresh = tmp_path_factory.mktemp("restored")
    restored = await asyncio.to_thread(_cli, fresh, "restore", "--yes", str(archives[0]))
    assert restored.returncode == 0, restored.stderr
    check_database(fresh / "app.sqlite")
    titles = task_titles(fresh / "app.sqlite")
    assert before_backup <= titles  # everything acknowledged before the backup started
    assert titles <= set(acknowledged)  # and nothing that was never acknowledged

    # The production server boots on the restored folder: ready, at the migration head.
    again = AppProcess(fresh)
    again.start()
    try:
        ready = httpx.get(f"{again.base_url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}
        # The old password signs in; the old asset opens through the app, byte for byte.
        browser = signed_in_with_password(again.base_url, "r6@example.com", DEFAULT_PASSWORD)
        opened = browser.get(f"/assets/{asset_id}/file")
        assert opened.status_code == 200
        assert opened.content == served.content
        assert browser.get(f"/assets/{asset_id}/thumb").status_code == 200
        page = browser.get("/tasks", params={"q": "task 0"})
        assert page.status_code == 200 and "task 0" in page.text
        # The backup folder is never served.
        for path in (f"/db/backups/{archives[0].name}", f"/backups/{archives[0].name}"):
            assert browser.get(path).status_code == 404
    finally:
        again.terminate()


def test_restore_refuses_while_the_app_serves_unless_forced(ops_dir: Path) -> None:
    settings = _settings(ops_dir)
    archive = create_backup(settings).path
    server = AppProcess(ops_dir)
    server.start()
    try:
        refused = CliRunner().invoke(restore_command, [str(archive), "--yes"], obj=settings)
        assert refused.exit_code == 1
        assert "the app is serving this database" in refused.output
        assert not list(ops_dir.glob("app.sqlite.pre-restore-*"))  # nothing was touched
        forced = CliRunner().invoke(
            restore_command, [str(archive), "--yes", "--force"], obj=settings
        )
        assert forced.exit_code == 0, forced.output
        assert list(ops_dir.glob("app.sqlite.pre-restore-*"))
    finally:
        server.kill()
    # Once the app is gone, a plain restore goes through.
    again = CliRunner().invoke(restore_command, [str(archive), "--yes"], obj=settings)
    assert again.exit_code == 0, again.output


def test_backup_rotation_keeps_the_newest_archives(ops_dir: Path) -> None:
    settings = _settings(ops_dir, backup_keep=2)
    made = [create_backup(settings).path for _ in range(3)]
    assert list_backups(settings.backup_dir) == [made[2], made[1]]
    result = CliRunner().invoke(backup_command, ["--keep", "1"], obj=settings)
    assert result.exit_code == 0, result.output
    assert len(list_backups(settings.backup_dir)) == 1
    assert "rotated out" in result.output


def _advice(tmp_path: Path) -> list[str]:
    """The commands ``db backup`` prints on PostgreSQL (indented lines of its message)."""
    settings = _settings(tmp_path, database_url="postgresql+asyncpg://app@127.0.0.1/app")
    outputs = []
    for command, args in ((backup_command, []), (restore_command, [__file__, "--yes"])):
        result = CliRunner().invoke(command, args, obj=settings)
        assert result.exit_code == 1
        outputs.append(result.output)
    assert outputs[0] == outputs[1]  # backup and restore give the same advice
    return [line.strip() for line in outputs[0].splitlines() if line.startswith("  ")]


def _sh(script: str, cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        ["sh", "-ec", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_backup_and_restore_on_postgresql_print_commands_that_accept_database_url(
    tmp_path: Path,
) -> None:
    pg_url, dump, restore = _advice(tmp_path)
    assert pg_url.startswith("PG_URL=") and dump.startswith("pg_dump ")
    assert restore.startswith("pg_restore ")
    assert '"$PG_URL"' in dump and "$DATABASE_URL" not in dump and "$DATABASE_URL" not in restore
    for command in (pg_url, dump, restore):
        assert command in README, f"README (Backups) must show: {command}"
    # The first line turns the app's URL into one libpq (pg_dump, pg_restore) accepts.
    url = "postgresql+asyncpg://app:s3cret@db.internal:5433/slicestar?ssl=require"
    shown = _sh(f'{pg_url}\nprintf "%s" "$PG_URL"', tmp_path, url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "postgresql://app:s3cret@db.internal:5433/slicestar?ssl=require"


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL (TEST_DATABASE_URL)")
def test_printed_pg_dump_and_pg_restore_commands_work_on_the_apps_database_url(
    tmp_path: Path, pg_template: str
) -> None:
    pg_url, dump, restore = _advice(tmp_path)
    source, target = (f"slicestar_t_{uuid.uuid4().hex[:12]}" for _ in range(2))
    pg_admin_execute(
        TEST_DATABASE_URL,
        f'CREATE DATABASE "{source}" TEMPLATE "{pg_template}"',
        f'CREATE DATABASE "{target}"',
    )
    try:
        source_url = pg_url_with_database(TEST_DATABASE_URL, source)  # the app's +asyncpg URL
        assert "+asyncpg" in source_url
        (tmp_path / "db" / "backups").mkdir(parents=True)
        dumped = _sh(f"{pg_url}\n{dump}", tmp_path, source_url)
        assert dumped.returncode == 0, dumped.stderr
        [archive] = (tmp_path / "db" / "backups").glob("slicestar-*.dump")
        restore_here = restore.replace("slicestar-….dump", archive.name)
        target_url = pg_url_with_database(TEST_DATABASE_URL, target)
        restored = _sh(f"{pg_url}\n{restore_here}", tmp_path, target_url)
        assert restored.returncode == 0, restored.stderr
        check = _sh(f'{pg_url}\npsql "$PG_URL" -Atc "SELECT version_num FROM alembic_version"',
                    tmp_path, target_url)  # fmt: skip
        assert check.stdout.strip() == head_revision(ROOT_DIR / "alembic.ini"), check.stderr
    finally:
        pg_admin_execute(
            TEST_DATABASE_URL,
            f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)',
            f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)',
        )


def test_restore_refuses_an_archive_with_unsafe_paths_or_a_damaged_database(ops_dir: Path) -> None:
    settings = _settings(ops_dir)
    original = (ops_dir / "app.sqlite").read_bytes()
    evil = ops_dir / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        data = b"owned"
        info = tarfile.TarInfo("../../outside.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    try:
        restore_backup(settings, evil)
        raise AssertionError("an archive escaping its folder was restored")
    except BackupError as exc:
        assert "not a readable backup archive" in str(exc)
    assert not (ops_dir.parent / "outside.txt").exists()

    good = create_backup(settings).path
    damaged = ops_dir / "damaged.tar.gz"
    with tarfile.open(good, "r:gz") as source, tarfile.open(damaged, "w:gz") as target:
        for member in source.getmembers():
            content = source.extractfile(member).read()
            if member.name == "database.sqlite":
                content = content[:4096] + b"\0" * 4096 + content[8192:]
            member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    try:
        restore_backup(settings, damaged)
        raise AssertionError("a damaged database was restored")
    except BackupError as exc:
        assert "checksum" in str(exc)
    assert (ops_dir / "app.sqlite").read_bytes() == original


async def test_scheduled_backups_run_once_per_interval(ops_dir: Path) -> None:
    settings = _settings(ops_dir, backup_interval_minutes=60)
    assert backup_if_due(settings) is not None
    assert backup_if_due(settings) is None  # the newest archive is younger than the interval
    (ops_dir / "backups" / list_backups(ops_dir / "backups")[0].name).unlink()
    app = create_app(settings)
    async with scheduled_backups(app):  # the app's lifespan hook
        for _ in range(200):
            if list_backups(settings.backup_dir):
                break
            await asyncio.sleep(0.01)
    assert len(list_backups(settings.backup_dir)) == 1
