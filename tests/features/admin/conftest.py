"""Helpers for admin tests: make an administrator, look users up, watch security events."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import update

from features.users.models import Role, User
from features.users.service import UserService
from shared.events import SECURITY_EVENT, SecurityEvent
from tests.support import register


async def user_id(app: Litestar, email: str) -> uuid.UUID:
    async with app.state.db.reader() as session:
        user = await UserService(session).by_email(email)
        assert user is not None, email
        return user.id


async def fetch_user(app: Litestar, email: str) -> User:
    async with app.state.db.reader() as session:
        user = await UserService(session).by_email(email)
        assert user is not None, email
        return user


async def set_columns(app: Litestar, email: str, **values: Any) -> None:
    """Write user columns directly (state a test needs that no form offers yet, e.g. 2FA on)."""
    async with app.state.db.write() as session:
        await session.execute(update(User).where(User.email == email).values(**values))


async def make_admin(app: Litestar, client, email: str = "admin@example.com", **kw: Any) -> None:
    """Register ``email`` on ``client`` and give it the admin role."""
    await register(client, email, **kw)
    await set_columns(app, email, role=Role.ADMIN)


ADMIN_EVENTS = frozenset(
    {
        "authz_role_change",
        "user_disabled",
        "user_enabled",
        "admin_sessions_revoked",
        "admin_email_verified",
        "admin_password_reset_sent",
    }
)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[SecurityEvent]:
    """Admin-action security events the app emits during the test (recorded, then passed on
    unchanged). Sign-in, sign-up and refusal events other features emit are left out."""
    seen: list[SecurityEvent] = []
    original = Litestar.emit

    def recording_emit(self: Litestar, event_id: str, *args: Any, **kwargs: Any) -> None:
        if event_id == SECURITY_EVENT and args[0].name in ADMIN_EVENTS:
            seen.append(args[0])
        original(self, event_id, *args, **kwargs)

    monkeypatch.setattr(Litestar, "emit", recording_emit)
    return seen
