"""Migrations on a populated database (SECURITY.md R7; DESIGN.md §4), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import ROOT_DIR
from tests.conftest import migrate
from tests.features.audit.helpers import names, wait_for_events
from tests.support import csrf, login, register


async def table_counts(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            return {
                name: (await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar()
                for name in names
                if name != "alembic_version"
            }
    finally:
        await engine.dispose()


def revisions() -> list[tuple[str, str | None]]:
    """(revision, down_revision) from the first to the head."""
    script = ScriptDirectory.from_config(Config(str(ROOT_DIR / "alembic.ini")))
    return [(r.revision, r.down_revision) for r in reversed(list(script.walk_revisions()))]


async def populate(client, url: str | None = None) -> None:
    await register(client, "ann@example.com")
    token = await csrf(client, "/tasks")
    for n in range(3):
        await client.post("/tasks", data={"title": f"Task {n}", "_csrf_token": token})
    if url is not None:  # the sign-up's audit event is written after the response
        for _ in range(100):
            if (await table_counts(url)).get("audit_events"):
                break
            await asyncio.sleep(0.02)


async def test_r7_each_step_down_and_up_keeps_existing_rows(client, app, settings):
    await populate(client, settings.database_url)
    before = await table_counts(settings.database_url)
    assert before["users"] == 1 and before["sessions"] == 1 and before["tasks"] == 3
    await app.state.db.dispose()
    for revision, down in reversed(revisions()[1:]):
        migrate(settings.database_url, "downgrade", down)
        during = await table_counts(settings.database_url)
        for table, count in during.items():
            assert count == before.get(table, count), f"{table} lost rows when leaving {revision}"
        migrate(settings.database_url, "upgrade", "head")
        after = await table_counts(settings.database_url)
        # Tables the downgraded revision created come back empty; every other table is intact.
        assert {t: after[t] for t in during} == {t: before[t] for t in during}
        assert set(after) == set(before)


async def test_r7_downgrade_base_and_upgrade_head_on_a_populated_database(client, app, settings):
    await populate(client, settings.database_url)
    await app.state.db.dispose()
    migrate(settings.database_url, "downgrade", "base")
    assert await table_counts(settings.database_url) == {}
    migrate(settings.database_url, "upgrade", "head")
    counts = await table_counts(settings.database_url)
    assert counts["users"] == counts["sessions"] == counts["tasks"] == 0


def test_r7_alembic_check_finds_no_drift(database_url):
    env = {
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "SECRET_KEY": "x" * 40,
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "check"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_migration_history_is_linear():
    heads = ScriptDirectory.from_config(Config(str(ROOT_DIR / "alembic.ini"))).get_heads()
    assert len(heads) == 1
    downs = [down for _, down in revisions()]
    assert downs[0] is None and len(set(downs)) == len(downs)


async def test_0011_rewrites_unicode_domains_to_their_ascii_form(client, app, settings):
    """Accounts stored with a Unicode domain before 0011 are found by sign-in afterwards."""
    for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
        await register(client, email)
    # The sign-ups' audit events are written after the responses: let them land before
    # Alembic needs the write lock.
    await wait_for_events(app, lambda rows: names(rows).count("authn_login_success") == 3)
    await app.state.mail.join()
    await app.state.db.dispose()
    migrate(settings.database_url, "downgrade", "0010")
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            for old, new in [
                ("ann@example.com", "ann@bücher.example"),
                ("bob@example.com", "bob@bücher.example"),  # its ASCII form is taken below
                ("cy@example.com", "bob@xn--bcher-kva.example"),
            ]:
                await conn.execute(
                    text("UPDATE users SET email = :new WHERE email = :old"),
                    {"new": new, "old": old},
                )
        migrate(settings.database_url, "upgrade", "head")
        async with engine.connect() as conn:
            emails = set((await conn.execute(text("SELECT email FROM users"))).scalars())
    finally:
        await engine.dispose()
    assert emails == {
        "ann@xn--bcher-kva.example",
        "bob@bücher.example",  # left as it was: the ASCII form belongs to another account
        "bob@xn--bcher-kva.example",
    }
    client.cookies.clear()
    assert (await login(client, "ann@bücher.example")).status_code == 303
