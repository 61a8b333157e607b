"""Storage keys, reconciliation (``litestar assets prune``) and removal with the user (S43)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
from click.testing import CliRunner
from litestar.cli._utils import LitestarEnv
from sqlalchemy import delete

from features.assets.cli import assets_group
from features.assets.service import delete_user_files, prune
from features.users.models import User
from shared.clock import now
from shared.config import ROOT_DIR
from shared.events import SECURITY_EVENT, SecurityEvent
from shared.storage import InvalidKey, LocalStorage, check_key
from tests.features.assets.helpers import (
    PDF_BYTES,
    assets_in_db,
    files_under,
    image_bytes,
    own_db,
    sign_up,
    swap_cookies,
    upload,
)


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        ".hidden/x",
        "a/.x",
        "a\\b",
        "a/b\x00c",
        "",
        "a/b/c/d/e/f",
        "x" * 300,
    ],
)
def test_s43_storage_refuses_keys_that_could_leave_the_root(tmp_path, key):
    with pytest.raises(InvalidKey):
        check_key(key)
    with pytest.raises(InvalidKey):
        LocalStorage(tmp_path / "root").path(key)


async def test_local_storage_save_open_exists_delete(tmp_path):
    storage = LocalStorage(tmp_path / "root")
    key = f"{uuid.uuid4()}/{uuid.uuid4()}.txt"
    assert not await storage.exists(key)
    await storage.save(key, b"hello")
    assert await storage.exists(key)
    assert b"".join([c async for c in await storage.open(key)]) == b"hello"
    work = tmp_path / "work.part"
    work.write_bytes(b"moved")
    await storage.save(key, work)
    assert not work.exists()
    assert b"".join([c async for c in await storage.open(key)]) == b"moved"
    assert await storage.keys() == [key]
    assert await storage.delete(key) is True
    assert await storage.delete(key) is False
    with pytest.raises(FileNotFoundError):
        await storage.open(key)


def _age(path, seconds: int = 7200) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


async def test_prune_reconciles_disk_and_database_both_ways(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "kept.png", image_bytes("PNG"))
    await upload(client, token, "lost.pdf", PDF_BYTES)
    kept, lost = await assets_in_db(app)
    root = settings.storage_dir
    (root / lost.path).unlink()  # a row whose file is gone
    orphan = root / str(kept.user_id) / f"{uuid.uuid4()}.webp"
    orphan.write_bytes(b"left behind")  # a file without a row
    fresh = root / str(kept.user_id) / f"{uuid.uuid4()}.pdf"
    fresh.write_bytes(b"upload in flight")  # too young to touch
    (root / ".incoming").mkdir(exist_ok=True)
    stale = root / ".incoming" / "abc.part"
    stale.write_bytes(b"half")
    for path in (orphan, stale):
        _age(path)

    async with own_db(app) as db:
        dry = await prune(db, settings, dry_run=True)
    assert dry.orphan_files == [orphan.relative_to(root).as_posix()]
    assert dry.missing_rows == [lost.path]
    assert dry.stale_incoming == 1
    assert orphan.exists() and stale.exists() and len(await assets_in_db(app)) == 2

    async with own_db(app) as db:
        report = await prune(db, settings)
    assert report.orphan_files == [orphan.relative_to(root).as_posix()]
    assert report.missing_rows == [lost.path]
    assert not orphan.exists() and not stale.exists() and fresh.exists()
    assert [a.id for a in await assets_in_db(app)] == [kept.id]
    assert (root / kept.path).exists() and (root / kept.thumbnail_path).exists()


async def test_prune_command_reports_what_it_did(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "a.txt", b"text\n")
    [asset] = await assets_in_db(app)
    orphan = settings.storage_dir / str(asset.user_id) / f"{uuid.uuid4()}.txt"
    orphan.write_bytes(b"x")
    env = LitestarEnv(app_path="app:create_app", app=app, cwd=ROOT_DIR)

    def run(*args: str):
        return CliRunner().invoke(assets_group, ["prune", *args], obj=env)

    result = await asyncio.to_thread(run, "--dry-run", "--grace-minutes", "0")
    assert result.exit_code == 0, result.output
    assert "Would remove 1 file(s) without a database row." in result.output
    assert orphan.exists()
    result = await asyncio.to_thread(run, "--grace-minutes", "0")
    assert result.exit_code == 0, result.output
    assert "Removed 1 file(s) without a database row." in result.output
    assert "Removed 0 row(s) whose file is missing." in result.output
    assert not orphan.exists()


async def test_deleting_a_user_deletes_their_files(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "a.png", image_bytes("PNG"))
    swap_cookies(client)
    bob_token = await sign_up(client, "bob@example.com")
    await upload(client, bob_token, "b.txt", b"bob\n")
    ann_asset, bob_asset = await assets_in_db(app)
    assert await delete_user_files(settings, uuid.uuid4()) == 0

    # The account-deletion page deletes the row (assets cascade) and emits user_deleted.
    async with own_db(app) as db, db.write() as session:
        await session.execute(delete(User).where(User.id == ann_asset.user_id))
    assert [a.id for a in await assets_in_db(app)] == [bob_asset.id]
    event = SecurityEvent(
        name="user_deleted",
        user_id=ann_asset.user_id,
        actor_id=ann_asset.user_id,
        outcome="success",
        ip_address=None,
        user_agent=None,
        request_id=None,
        occurred_at=now(),
    )
    app.emit(SECURITY_EVENT, event, app.state)
    for _ in range(100):  # listeners run in the app's background task: poll up to ~2 s
        if not (settings.storage_dir / str(ann_asset.user_id)).exists():
            break
        await client.get("/healthz")  # lets the app's event loop run the listener
        await asyncio.sleep(0.02)
    assert files_under(settings.storage_dir) == [bob_asset.path]
