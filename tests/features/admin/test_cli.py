"""The command line through Click's test runner, against a real migrated database.

``litestar users …`` and ``litestar db seed`` / ``db refresh`` are invoked exactly as an
operator would (``litestar --app-dir src …``), with ``DATABASE_URL`` pointing at the test's
database. Async tests run the CLI in a thread (it runs its own event loop).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result
from litestar.cli.main import litestar_group
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from features.admin.cli import EXIT_INVALID, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_TAKEN
from features.notifications.models import Notification
from features.tasks.models import Task, TaskStatus
from features.users.models import Role, User
from shared.config import ROOT_DIR, get_settings
from shared.database.migrations import head_revision
from tests.conftest import SECRET_KEY
from tests.features.admin.conftest import fetch_user
from tests.support import login, register

PASSWORD = "a long enough passphrase"

Cli = Callable[..., Result]


def plain(output: str) -> str:
    """The output without the boxes and line wrapping of rich error panels."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.fixture
def cli(database_url: str) -> Iterator[Cli]:
    """``cli("users", "list", input=..., env=...)`` runs ``litestar --app-dir src users list``."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        environment = {
            "DATABASE_URL": database_url,
            "APP_ENV": "test",
            "SECRET_KEY": SECRET_KEY,
            "COLUMNS": "200",
            **(env or {}),
        }
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(
                litestar_group,
                ["--app-dir", str(ROOT_DIR / "src"), *args],
                input=input,
                env=environment,
            )
        finally:
            get_settings.cache_clear()

    yield run


async def in_thread(cli: Cli, *args: str, **kwargs) -> Result:
    return await asyncio.to_thread(cli, *args, **kwargs)


def query(url: str, stmt):
    async def go():
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(stmt)).all()
        finally:
            await engine.dispose()

    return asyncio.run(go())


def create_args(email: str, *extra: str) -> tuple[str, ...]:
    return ("users", "create", "--email", email, "--name", "Root User", "--password-stdin", *extra)


async def test_users_create_admin_from_stdin_then_sign_in(cli, client, app):
    result = await in_thread(
        cli, *create_args("Root@Example.com", "--admin"), input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "Created admin root@example.com" in result.output
    assert PASSWORD not in result.output
    assert (await login(client, "root@example.com", PASSWORD)).status_code == 303
    assert (await client.get("/admin")).status_code == 200
    user = await fetch_user(app, "root@example.com")
    # The operator vouches for the address: CLI accounts are verified unless --unverified.
    assert user.role == Role.ADMIN and user.email_verified_at is not None


def test_users_create_asks_for_the_password_hidden_and_twice(cli, database_url):
    result = cli(
        "users", "create", "--email", "ann@example.com", "--name", "Ann", "--verified",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # the prompt does not echo
    [(role, verified)] = query(
        database_url,
        select(User.role, User.email_verified_at).where(User.email == "ann@example.com"),
    )
    assert role == "user" and verified is not None


def test_users_create_errors_have_clear_messages_and_exit_codes(cli, database_url):
    assert cli(*create_args("ann@example.com"), input=PASSWORD + "\n").exit_code == 0
    taken = cli(*create_args("ANN@example.com"), input=PASSWORD + "\n")
    assert taken.exit_code == EXIT_TAKEN
    assert "An account with the email ann@example.com already exists." in plain(taken.output)
    weak = cli(*create_args("bob@example.com"), input="short\n")
    assert weak.exit_code == EXIT_INVALID and "Use at least 8 characters." in plain(weak.output)
    bad_email = cli(*create_args("not-an-email"), input=PASSWORD + "\n")
    assert bad_email.exit_code == EXIT_INVALID and "valid email" in plain(bad_email.output)
    # There is no way to pass the password as an argument.
    argument = cli(*create_args("bob@example.com", "--password", PASSWORD))
    assert argument.exit_code == 2 and "No such option" in plain(argument.output)
    assert query(database_url, select(func.count()).select_from(User)) == [(1,)]


def test_users_missing_user_and_last_admin_are_refused(cli, database_url):
    for command in (
        ("set-role", "nobody@example.com", "admin"),
        ("disable", "nobody@example.com"),
        ("enable", "nobody@example.com"),
    ):
        result = cli("users", *command)
        assert result.exit_code == EXIT_NOT_FOUND, command
        assert "No user has the email nobody@example.com." in plain(result.output)
    assert cli(*create_args("root@example.com", "--admin"), input=PASSWORD + "\n").exit_code == 0
    for command in (("set-role", "root@example.com", "user"), ("disable", "root@example.com")):
        result = cli("users", *command)
        assert result.exit_code == EXIT_REFUSED, command
        assert "root@example.com is the last active administrator" in plain(result.output)
    assert query(database_url, select(User.role, User.disabled_at)) == [("admin", None)]
    assert cli("users", "set-role", "root@example.com", "owner").exit_code == 2


async def test_users_set_role_disable_enable_and_list(cli, client, other_client, app):
    await register(client, "bob@example.com", name="Bob")
    await register(other_client, "ann@example.com", name="Ann")
    result = await in_thread(cli, "users", "set-role", "bob@example.com", "admin")
    assert result.exit_code == 0 and "bob@example.com: role user → admin." in result.output
    assert (await client.get("/admin")).status_code == 200  # the next request sees the role
    assert (
        "already has the role admin"
        in (await in_thread(cli, "users", "set-role", "bob@example.com", "admin")).output
    )

    result = await in_thread(cli, "users", "disable", "ann@example.com")
    assert (
        result.exit_code == 0 and "Disabled ann@example.com; 1 session(s) ended." in result.output
    )
    assert (await other_client.get("/dashboard")).status_code == 303  # signed out at once
    assert (await login(other_client, "ann@example.com")).status_code == 422
    assert (
        "already disabled" in (await in_thread(cli, "users", "disable", "ann@example.com")).output
    )

    listing = await in_thread(cli, "users", "list", "--status", "disabled")
    assert listing.exit_code == 0
    assert "ann@example.com" in listing.output and "bob@example.com" not in listing.output
    assert "1 of 1 account(s)." in listing.output
    listing = await in_thread(cli, "users", "list", "--role", "admin")
    assert "bob@example.com" in listing.output and "ann@example.com" not in listing.output
    assert "2 of 2" in (await in_thread(cli, "users", "list", "--search", "EXAMPLE.com")).output

    result = await in_thread(cli, "users", "enable", "ann@example.com")
    assert result.exit_code == 0 and "Enabled ann@example.com." in result.output
    assert (await login(other_client, "ann@example.com")).status_code == 303


async def test_db_seed_is_idempotent_and_prints_the_admin_password_once(cli, client, app):
    first = await in_thread(cli, "db", "seed", "--users", "3")
    assert first.exit_code == 0, first.output
    assert "Seeded 4 user(s), 12 task(s) and 12 notification(s)." in first.output
    password = re.search(r"Admin: admin@example.com / (\S+) ", first.output).group(1)
    demo_password = re.search(r"sign in with: (\S+)", first.output).group(1)

    second = await in_thread(cli, "db", "seed", "--users", "3")
    assert second.exit_code == 0, second.output
    assert "Seeded 0 user(s), 0 task(s) and 0 notification(s)." in second.output
    assert password not in second.output and "password is unchanged" in second.output

    async with app.state.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 4
        statuses = set(await session.scalars(select(Task.status)))
        notes = (await session.execute(select(Notification.user_id, Notification.read_at))).all()
    assert statuses == {TaskStatus.PENDING, TaskStatus.COMPLETED}
    assert len(notes) == 12 and len({user for user, _ in notes}) == 4  # three per account
    assert sum(read is None for _, read in notes) == 8  # two unread each
    assert (await login(client, "admin@example.com", password)).status_code == 303
    assert (await client.get("/admin")).status_code == 200
    assert (await login(client, "demo2@example.com", demo_password)).status_code == 303
    bell = (await client.get("/notifications")).text
    assert "Demo tasks ready" in bell and "Welcome to Slicestar" in bell


def test_db_seed_shows_progress_for_many_users(cli, database_url):
    result = cli("db", "seed", "--users", "60")
    assert result.exit_code == 0, result.output
    assert "Demo users (up to 60)" in result.output
    assert query(database_url, select(func.count()).select_from(User)) == [(61,)]
    assert query(database_url, select(func.count()).select_from(Task)) == [(240,)]


def test_db_refresh_refuses_in_production_and_rebuilds_in_development(cli, database_url):
    assert cli(*create_args("keep@example.com"), input=PASSWORD + "\n").exit_code == 0
    production = {"APP_ENV": "production", "SECRET_KEY": "p" * 48}
    for command in (("db", "refresh", "--yes"), ("db", "seed")):
        refused = cli(*command, env=production)
        assert refused.exit_code == EXIT_REFUSED, command
        assert "APP_ENV is production" in plain(refused.output)
    assert query(database_url, select(User.email)) == [("keep@example.com",)]

    assert cli("db", "refresh", input="n\n").exit_code == 1  # declined: nothing happens
    assert query(database_url, select(User.email)) == [("keep@example.com",)]

    result = cli("db", "refresh", "--yes", "--users", "2")
    assert result.exit_code == 0, result.output
    assert (
        "at the newest schema" in result.output and "Admin: admin@example.com / " in result.output
    )
    emails = {email for (email,) in query(database_url, select(User.email))}
    assert emails == {"admin@example.com", "demo1@example.com", "demo2@example.com"}
    [(version,)] = query(database_url, text("SELECT version_num FROM alembic_version"))
    assert version == head_revision(ROOT_DIR / "alembic.ini")


def test_s52_users_set_role_disable_and_enable_are_audited(cli, database_url):
    from features.audit.models import AuditEvent

    assert cli(*create_args("root@example.com", "--admin"), input=PASSWORD + "\n").exit_code == 0
    assert cli(*create_args("ann@example.com"), input=PASSWORD + "\n").exit_code == 0
    [(ann,)] = query(database_url, select(User.id).where(User.email == "ann@example.com"))
    for command in (
        ("set-role", "ann@example.com", "admin"),
        ("set-role", "ann@example.com", "admin"),  # nothing changes: nothing recorded
        ("disable", "ann@example.com"),
        ("disable", "ann@example.com"),
        ("enable", "ann@example.com"),
        ("enable", "ann@example.com"),
        ("set-role", "root@example.com", "user"),  # allowed: ann is an admin now
    ):
        assert cli("users", *command).exit_code == 0, command
    t = AuditEvent.__table__
    rows = query(
        database_url,
        select(
            t.c.event, t.c.user_id, t.c.actor_id, t.c.outcome, t.c.details, t.c.ip_address
        ).order_by(t.c.occurred_at, t.c.id),
    )
    assert [(r.event, r.details) for r in rows] == [
        ("authz_role_change", {"old": "user", "new": "admin", "via": "cli"}),
        ("user_disabled", {"via": "cli"}),  # the trail drops "session…" keys (S52)
        ("user_enabled", {"via": "cli"}),
        ("authz_role_change", {"old": "admin", "new": "user", "via": "cli"}),
    ]
    assert [str(r.user_id) for r in rows[:3]] == [str(ann)] * 3
    assert all(r.actor_id is None and r.outcome == "success" for r in rows)
    assert all(r.ip_address is None for r in rows)
