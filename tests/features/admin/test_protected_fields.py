"""SECURITY.md S40: forms and JSON cannot set protected fields.

Every form of the application is posted once validly with extra keys naming protected
columns (role, owner, verification, 2FA state, status, timestamps, ids); only the fields the
form is about change.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from features.tasks.models import Task, TaskStatus
from features.users.models import Role
from features.users.service import UserService
from shared import clock
from tests.features.admin.conftest import fetch_user, make_admin, user_id
from tests.support import DEFAULT_PASSWORD, csrf, csrf_from, login, mailed_link, register

LONG_AGO = "2001-01-01T00:00:00.000Z"
CHOSEN_ID = "01a20000-0000-7000-8000-00000000beef"


def extras(victim: uuid.UUID | None = None) -> dict[str, str]:
    """Keys a hostile form post might add."""
    return {
        "role": "admin",
        "user_id": str(victim or CHOSEN_ID),
        "id": CHOSEN_ID,
        "email_verified_at": LONG_AGO,
        "two_factor_enabled": "1",
        "two_factor_secret": "JBSWY3DPEHPK3PXP",
        "two_factor_confirmed_at": LONG_AGO,
        "disabled_at": "",
        "last_login_at": LONG_AGO,
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "password_hash": "$argon2id$forged",
        "google_id": "forged",
        "status": "completed",
    }


def assert_plain_user(user, *, since, verified: bool = False) -> None:
    assert user.role == Role.USER
    if verified:  # by the mailed link, now: never the posted LONG_AGO
        assert user.email_verified_at is not None and user.email_verified_at >= since
    else:
        assert user.email_verified_at is None
    assert user.two_factor_enabled is False and user.two_factor_secret is None
    assert user.two_factor_confirmed_at is None and user.google_id is None
    assert user.disabled_at is None
    assert user.created_at >= since and user.updated_at >= since
    assert str(user.id) != CHOSEN_ID
    assert user.password_hash.startswith("$argon2id$v=19$")


async def tasks_of(app, owner: uuid.UUID) -> list[Task]:
    async with app.state.db.reader() as session:
        return list(await session.scalars(select(Task).where(Task.user_id == owner)))


async def test_s40_register_and_login_ignore_protected_fields(client, other_client, app):
    start = clock.now() - timedelta(seconds=1)
    token = await csrf(client, "/register")
    response = await client.post(
        "/register",
        data={
            **extras(),
            "name": "Mallory",
            "email": "mallory@example.com",
            "password": DEFAULT_PASSWORD,
            "password_confirmation": DEFAULT_PASSWORD,
            "_csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert_plain_user(await fetch_user(app, "mallory@example.com"), since=start)
    # The verification link's button, with the same extra keys.
    link = await mailed_link(client, "mallory@example.com", "/verify-email/")
    page = await client.get(link)
    response = await client.post(
        "/verify-email/confirm",
        data={**extras(), "token": link.rsplit("/", 1)[1], "_csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303
    assert_plain_user(await fetch_user(app, "mallory@example.com"), since=start, verified=True)
    assert (await client.get("/admin")).status_code == 403

    token = await csrf(other_client, "/login")
    response = await other_client.post(
        "/login",
        data={
            **extras(),
            "email": "mallory@example.com",
            "password": DEFAULT_PASSWORD,
            "_csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert_plain_user(await fetch_user(app, "mallory@example.com"), since=start, verified=True)
    assert (await other_client.get("/admin")).status_code == 403


async def test_s40_json_bodies_cannot_create_or_promote_anyone(client, app):
    token = await csrf(client, "/register")
    payload = {
        **extras(),
        "name": "Mallory",
        "email": "mallory@example.com",
        "password": DEFAULT_PASSWORD,
        "password_confirmation": DEFAULT_PASSWORD,
    }
    response = await client.post("/register", json=payload, headers={"X-CSRF-Token": token})
    assert response.status_code == 422  # forms only: a JSON body is no form
    async with app.state.db.reader() as session:
        assert await UserService(session).by_email("mallory@example.com") is None
    await register(client, "mallory@example.com")
    token = await csrf(client, "/tasks")
    response = await client.post(
        "/tasks", json={**extras(), "title": "x"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 422
    assert await tasks_of(app, await user_id(app, "mallory@example.com")) == []
    assert (await fetch_user(app, "mallory@example.com")).role == Role.USER


async def test_s40_task_forms_ignore_owner_status_ids_and_timestamps(client, other_client, app):
    start = clock.now() - timedelta(seconds=1)
    await register(client, "mallory@example.com")
    await register(other_client, "victim@example.com")
    me = await user_id(app, "mallory@example.com")
    victim = await user_id(app, "victim@example.com")
    token = await csrf(client, "/tasks")

    response = await client.post(
        "/tasks", data={**extras(victim), "title": "Mine", "_csrf_token": token}
    )
    assert response.status_code == 303
    [task] = await tasks_of(app, me)
    assert await tasks_of(app, victim) == []
    assert task.title == "Mine" and task.status == TaskStatus.PENDING
    assert str(task.id) != CHOSEN_ID and task.created_at >= start

    response = await client.post(
        f"/tasks/{task.id}/edit", data={**extras(victim), "title": "Renamed", "_csrf_token": token}
    )
    assert response.status_code == 303
    [edited] = await tasks_of(app, me)
    assert edited.title == "Renamed" and edited.status == TaskStatus.PENDING
    assert edited.id == task.id and edited.created_at == task.created_at

    data = {**extras(victim), "title": "Hijacked", "status": "completed", "_csrf_token": token}
    response = await client.post(f"/tasks/{task.id}/status", data=data)
    assert response.status_code == 303
    [done] = await tasks_of(app, me)
    assert done.status == TaskStatus.COMPLETED and done.title == "Renamed"
    assert done.id == task.id and done.created_at == task.created_at
    assert await tasks_of(app, victim) == []


async def test_s40_admin_actions_change_only_their_own_field(client, other_client, app):
    start = clock.now() - timedelta(seconds=1)
    await make_admin(app, client)
    await register(other_client, "bob@example.com")
    bob = await fetch_user(app, "bob@example.com")
    token = await csrf(client, "/admin")

    async def post(action: str, **data: str) -> None:
        payload = {**extras(), "name": "Renamed", "email": "other@example.com"}
        payload.update(data)
        response = await client.post(
            f"/admin/users/{bob.id}/{action}", data={**payload, "_csrf_token": token}
        )
        assert response.status_code == 303, (action, response.text[:300])

    await post("verify-email")  # carries role=admin: the role must not change
    after = await fetch_user(app, "bob@example.com")
    assert after.email_verified_at is not None and after.email_verified_at >= start
    assert after.role == Role.USER and after.two_factor_enabled is False

    await post("role", role="user")  # carries 2FA, timestamps, name, email
    after = await fetch_user(app, "bob@example.com")
    assert after.role == Role.USER and after.name == bob.name and after.email == bob.email
    assert after.two_factor_enabled is False and after.created_at == bob.created_at

    await post("disable", role="admin")
    await post("enable", role="admin", disabled_at=LONG_AGO)
    await post("sessions/end", role="admin")
    after = await fetch_user(app, "bob@example.com")
    assert after.role == Role.USER and after.disabled_at is None
    assert after.password_hash == bob.password_hash and after.id == bob.id
    assert after.name == bob.name and after.email == "bob@example.com"
    assert (await login(other_client, "bob@example.com")).status_code == 303
