"""Command line (DESIGN.md §7): ``litestar users …`` and ``litestar db seed`` / ``db refresh``.

Commands open their own :class:`shared.database.Database` inside ``asyncio.run`` and dispose
of it. Passwords come from a hidden prompt or the first line of stdin, never from an argument
(arguments end up in shell history and the process list).

``users set-role``, ``disable`` and ``enable`` write the same audit events as the admin area
(actor: none; ``via: cli`` in the details).

Exit codes: 0 done, 1 unexpected error, 2 invalid input, 3 email taken, 4 no such user,
5 refused (last admin, production).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.engine import make_url

from features.admin.service import AdminService, LastAdmin, UserNotFound
from features.audit import service as audit_service
from features.core.auth.service import password_error
from features.notifications.service import NotificationService, NotificationType
from features.tasks.service import TaskService, TaskStatus
from features.users.service import (
    EmailTaken,
    Role,
    User,
    UserFilter,
    UserService,
    email_error,
    name_error,
)
from shared.config import ROOT_DIR, Settings, get_settings
from shared.database import Database
from shared.events import SecurityEvent, offline_security_event
from shared.security.passwords import Passwords

T = TypeVar("T")

EXIT_INVALID = 2
EXIT_TAKEN = 3
EXIT_NOT_FOUND = 4
EXIT_REFUSED = 5

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_NAMES = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "John Backus",
    "Radia Perlman",
)
DEMO_TASKS = (
    "Read the onboarding notes",
    "Reply to the support ticket",
    "Prepare the weekly report",
    "Review the pull request",
    "Book the meeting room",
    "Water the office plants",
)
SEED_BATCH = 50


def demo_notifications(app_name: str) -> list[tuple[NotificationType, str, str, str | None, bool]]:
    """What every new demo account finds under its bell: one read, two unread."""
    return [
        (
            NotificationType.INFO,
            f"Welcome to {app_name}",
            "This is a demo account. Its tasks and notifications are made up.",
            "/dashboard",
            True,
        ),
        (
            NotificationType.SUCCESS,
            "Demo tasks ready",
            "Four tasks are waiting for you, two of them already completed.",
            "/tasks",
            False,
        ),
        (
            NotificationType.WARNING,
            "Protect your account",
            "Turn on two-factor authentication in Settings → Security.",
            "/settings/security",
            False,
        ),
    ]


class CLIError(click.ClickException):
    """A clear error for the operator with its own exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _settings() -> Settings:
    return get_settings()


def _run(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run ``work(db, settings)`` on a fresh engine and dispose of it afterwards."""
    settings = _settings()

    async def main() -> T:
        db = Database(settings.database_url)
        try:
            return await work(db, settings)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _passwords(settings: Settings) -> Passwords:
    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True, show_default=False
        )
    if message := password_error(password):
        raise CLIError(f"Password refused: {message}", EXIT_INVALID)
    return password


def _refuse_in_production(settings: Settings, what: str) -> None:
    if settings.app_env == "production":
        raise CLIError(f"Refusing to {what}: APP_ENV is production.", EXIT_REFUSED)


@click.group("users", help="Manage user accounts: create, list, set-role, disable, enable.")
def users_group() -> None:
    """The ``litestar users`` command group."""


@users_group.command("create")
@click.option("--email", required=True, help="Email address (sign-in name).")
@click.option("--name", required=True, help="Display name.")
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
@click.option(
    "--verified/--unverified",
    default=True,
    show_default=True,
    help="Mark the email address verified (the operator vouches for it), or leave it to a "
    "verification link the person asks for after signing in.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
def create_user(email: str, name: str, admin: bool, verified: bool, password_stdin: bool) -> None:
    """Create an account. The password is asked for (hidden) or read from stdin."""
    email, name = email.strip(), " ".join(name.split())
    for message in (email_error(email), name_error(name)):
        if message:
            raise CLIError(message, EXIT_INVALID)
    password = _read_password(password_stdin)

    async def work(db: Database, settings: Settings) -> User:
        password_hash = await _passwords(settings).hash(password)
        async with db.write() as session:
            users = UserService(session)
            role = Role.ADMIN if admin else Role.USER
            user = await users.create(
                name=name, email=email, password_hash=password_hash, role=role
            )
            if verified:
                await users.mark_email_verified(user.id)
            return user

    try:
        user = _run(work)
    except EmailTaken as exc:
        raise CLIError(
            f"An account with the email {exc.args[0]} already exists.", EXIT_TAKEN
        ) from None
    click.echo(f"Created {user.role.value} {user.email} ({user.id}).")


async def _user_by_email(db: Database, email: str) -> User:
    async with db.reader() as session:
        user = await UserService(session).by_email(email)
    if user is None:
        raise CLIError(f"No user has the email {email}.", EXIT_NOT_FOUND)
    return user


def _admin_action(
    email: str,
    action: Callable[[AdminService, User], Awaitable[T]],
    audit: Callable[[User, T], SecurityEvent | None],
) -> T:
    """Run ``action`` on the account ``email``, then write the audit event ``audit`` makes of
    its result (``None``: nothing changed, nothing to record). The actor is nobody: the
    event's details say ``via: cli`` (SECURITY.md S52, admin actions)."""

    async def work(db: Database, settings: Settings) -> T:
        user = await _user_by_email(db, email)
        async with db.writer() as session:
            result = await action(AdminService(session, settings), user)
        event = audit(user, result)
        if event is not None:
            await audit_service.record(db, event)
        return result

    try:
        return _run(work)
    except UserNotFound:
        raise CLIError(f"No user has the email {email}.", EXIT_NOT_FOUND) from None
    except LastAdmin:
        raise CLIError(
            f"{email} is the last active administrator: promote someone else first.",
            EXIT_REFUSED,
        ) from None


@users_group.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice([r.value for r in Role]))
def set_role(email: str, role: str) -> None:
    """Give the account EMAIL the ROLE (user or admin); applies on its next request."""

    def audit(user: User, old: Role) -> SecurityEvent | None:
        if old.value == role:
            return None
        return offline_security_event(
            "authz_role_change", user_id=user.id, old=old.value, new=role, via="cli"
        )

    old = _admin_action(email, lambda svc, u: svc.change_role(None, u.id, Role(role)), audit)
    if old.value == role:
        click.echo(f"{email} already has the role {role}.")
    else:
        click.echo(f"{email}: role {old.value} → {role}.")


@users_group.command("disable")
@click.argument("email")
def disable_user(email: str) -> None:
    """Disable the account EMAIL: it cannot sign in and every session ends now."""

    def audit(user: User, ended: int | None) -> SecurityEvent | None:
        if ended is None:
            return None
        return offline_security_event(
            "user_disabled", user_id=user.id, sessions_ended=ended, via="cli"
        )

    ended = _admin_action(email, lambda svc, u: svc.disable(None, u.id), audit)
    if ended is None:
        click.echo(f"{email} is already disabled.")
    else:
        click.echo(f"Disabled {email}; {ended} session(s) ended.")


@users_group.command("enable")
@click.argument("email")
def enable_user(email: str) -> None:
    """Let the disabled account EMAIL sign in again."""

    def audit(user: User, changed: bool) -> SecurityEvent | None:
        return (
            offline_security_event("user_enabled", user_id=user.id, via="cli") if changed else None
        )

    changed = _admin_action(email, lambda svc, u: svc.enable(u.id), audit)
    click.echo(f"Enabled {email}." if changed else f"{email} is already active.")


@users_group.command("list")
@click.option("--search", default="", help="Part of a name or email.")
@click.option("--role", type=click.Choice(["all", *(r.value for r in Role)]), default="all")
@click.option("--status", type=click.Choice(["all", "active", "disabled"]), default="all")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
def list_users(search: str, role: str, status: str, limit: int) -> None:
    """List accounts, newest first."""
    where = UserFilter(
        text=search.strip(),
        role=None if role == "all" else Role(role),
        disabled=None if status == "all" else status == "disabled",
    )

    async def work(db: Database, _settings: Settings) -> tuple[list[User], int]:
        async with db.reader() as session:
            found = await UserService(session).search(where, sort="newest", page=1, per_page=limit)
            return list(found.items), found.total

    users, total = _run(work)
    click.echo(f"{'EMAIL':<36} {'NAME':<24} {'ROLE':<6} {'STATUS':<9} VERIFIED 2FA CREATED")
    for user in users:
        click.echo(
            f"{user.email:<36} {user.name[:24]:<24} {user.role.value:<6} "
            f"{'disabled' if user.is_disabled else 'active':<9} "
            f"{'yes' if user.email_verified_at else 'no':<8} "
            f"{'on' if user.two_factor_enabled else 'off':<3} "
            f"{user.created_at:%Y-%m-%d}"
        )
    click.echo(f"{len(users)} of {total} account(s).")


@dataclass
class Seeded:
    """What a seed run created. Passwords are set only when their accounts were created."""

    users: int = 0
    tasks: int = 0
    notifications: int = 0
    admin_password: str | None = None
    demo_password: str | None = None


async def seed(db: Database, settings: Settings, count: int) -> Seeded:
    """Create the demo admin and ``count`` demo users with tasks and notifications; existing
    accounts are kept as they are.

    Idempotent: a second run with the same ``count`` creates nothing. The admin's random
    password is returned (to be printed) only when the admin is created.
    """
    passwords = _passwords(settings)
    made = Seeded()
    async with db.write() as session:
        users = UserService(session)
        if await users.by_email(DEMO_ADMIN_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            admin = await users.create(
                name="Demo Admin",
                email=DEMO_ADMIN_EMAIL,
                password_hash=await passwords.hash(password),
                role=Role.ADMIN,
            )
            await users.mark_email_verified(admin.id)
            made.notifications += await NotificationService(session).add_demo(
                admin.id, demo_notifications(settings.app_name)
            )
            made.admin_password = password
            made.users = 1
    demo_password = secrets.token_urlsafe(12)
    demo_hash: str | None = None  # hashed once, only if a demo user is created
    label = f"Demo users (up to {count})"
    with click.progressbar(length=count, label=label, file=sys.stderr) as bar:
        for start in range(1, count + 1, SEED_BATCH):
            numbers = range(start, min(start + SEED_BATCH, count + 1))
            async with db.write() as session:
                users, tasks = UserService(session), TaskService(session)
                notifications = NotificationService(session)
                for n in numbers:
                    email = f"demo{n}@example.com"
                    if await users.by_email(email) is None:
                        demo_hash = demo_hash or await passwords.hash(demo_password)
                        user = await users.create(
                            name=f"{DEMO_NAMES[(n - 1) % len(DEMO_NAMES)]} {n}",
                            email=email,
                            password_hash=demo_hash,
                        )
                        # Demo accounts can sign in at once (no verification mail to example.com).
                        await users.mark_email_verified(user.id)
                        items = [
                            (
                                DEMO_TASKS[(n + i) % len(DEMO_TASKS)],
                                TaskStatus.COMPLETED if i % 2 else TaskStatus.PENDING,
                            )
                            for i in range(4)
                        ]
                        made.tasks += await tasks.add_demo(user.id, items)
                        made.notifications += await notifications.add_demo(
                            user.id, demo_notifications(settings.app_name)
                        )
                        made.users += 1
                    bar.update(1)
    if demo_hash is not None:
        made.demo_password = demo_password
    return made


def _report_seed(made: Seeded) -> None:
    click.echo(
        f"Seeded {made.users} user(s), {made.tasks} task(s) "
        f"and {made.notifications} notification(s)."
    )
    if made.admin_password:
        click.echo(
            f"Admin: {DEMO_ADMIN_EMAIL} / {made.admin_password} "
            "(shown once; change it or create your own admin)."
        )
    else:
        click.echo(f"Admin {DEMO_ADMIN_EMAIL} already exists; its password is unchanged.")
    if made.demo_password:
        click.echo(f"New demo users (demoN@example.com) sign in with: {made.demo_password}")


@click.command("seed")
@click.option(
    "--users",
    "count",
    type=click.IntRange(0, 100_000),
    default=5,
    show_default=True,
    help="How many demo users (demo1@example.com …) to have.",
)
def db_seed(count: int) -> None:
    """Add demo data: an admin, COUNT users with tasks in both states and notifications (read
    and unread). Safe to run again."""
    _refuse_in_production(_settings(), "seed demo data")
    _report_seed(_run(lambda db, settings: seed(db, settings, count)))


def _database_files(url: str) -> list[Path]:
    database = make_url(url).database
    if not database or database == ":memory:":
        return []
    path = Path(database)
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _alembic(settings: Settings, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    result = subprocess.run(  # noqa: S603 (fixed argv: this interpreter runs alembic)
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise CLIError(f"alembic {' '.join(args)} failed:\n{result.stderr[-2000:]}")


@click.command("refresh")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--users",
    "count",
    type=click.IntRange(0, 100_000),
    default=5,
    show_default=True,
    help="How many demo users to seed.",
)
def db_refresh(yes: bool, count: int) -> None:
    """Development only: delete the database, migrate to head, seed demo data."""
    settings = _settings()
    _refuse_in_production(settings, "refresh the database")
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    if not yes:
        click.confirm(f"Delete every row in {shown} and start over?", abort=True)
    if settings.is_sqlite:
        for path in _database_files(settings.database_url):
            path.unlink(missing_ok=True)
    else:
        _alembic(settings, "downgrade", "base")
    _alembic(settings, "upgrade", "head")
    click.echo(f"Recreated {shown} at the newest schema.")
    _report_seed(_run(lambda db, settings: seed(db, settings, count)))


cli_commands = [users_group]
db_commands = [db_seed, db_refresh]
