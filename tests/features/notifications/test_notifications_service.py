"""The service: notify's rules, counts, the one-query bell, ownership, pruning, the listeners."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from features.notifications.models import NotificationType
from features.notifications.reactions import TEMPLATES
from features.notifications.service import NotificationNotFound, NotificationService
from shared import clock
from shared.events import SECURITY_EVENT, SecurityEvent
from tests.features.notifications.support import make, rows, total, user_id, wait_for_rows
from tests.support import register


@pytest.fixture
async def ann(client, db) -> uuid.UUID:
    await register(client, "ann@example.com", name="Ann")
    return await user_id(db, "ann@example.com")


async def test_notify_stores_a_clean_unread_notification(db, ann):
    async with db.writer() as session:
        made = await NotificationService(session).notify(
            ann, "warning", "  New\n sign-in  ", "x" * 1500, "/settings", data={"k": 1}
        )
    [stored] = await rows(db, ann)
    assert stored.id == made.id and stored.id.version == 7
    assert stored.type is NotificationType.WARNING
    assert stored.title == "New sign-in"
    assert len(stored.message) == 1000 and stored.message.endswith("…")
    assert stored.link == "/settings" and stored.data == {"k": 1}
    assert stored.read_at is None


@pytest.mark.parametrize("link", ["https://evil.example/", "//evil.example", "/a\\b", "settings"])
async def test_notify_refuses_off_site_links(db, ann, link):
    async with db.writer() as session:
        with pytest.raises(ValueError):
            await NotificationService(session).notify(ann, "info", "t", "m", link)
    assert await total(db) == 0


async def test_notify_refuses_unknown_types(db, ann):
    async with db.writer() as session:
        with pytest.raises(ValueError):
            await NotificationService(session).notify(ann, "urgent", "t", "m")


async def test_bell_counts_unread_and_lists_ten_newest_in_one_query(db, ann, bob):
    await make(db, ann, 12)
    await make(db, bob, 3)
    async with db.writer() as session:
        service = NotificationService(session)
        newest = (await rows(db, ann))[0]
        await service.mark_read(ann, newest.id)
        statements: list[str] = []
        engine = db.engines[-1].sync_engine  # the writers' engine

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", count)
        try:
            bell = await service.bell(ann)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert bell.unread == 11
    assert [n.title for n in bell.recent] == [f"Note {i}" for i in range(12, 2, -1)]
    assert len([s for s in statements if "notifications" in s]) == 1


async def test_bell_of_a_user_without_notifications_is_empty(db, ann):
    async with db.reader() as session:
        bell = await NotificationService(session).bell(ann)
    assert bell.unread == 0 and list(bell.recent) == []


async def test_s38_service_never_touches_another_users_notification(db, ann, bob):
    [theirs] = await make(db, bob)
    async with db.writer() as session:
        service = NotificationService(session)
        with pytest.raises(NotificationNotFound):
            await service.mark_read(ann, theirs.id)
        with pytest.raises(NotificationNotFound):
            await service.delete(ann, theirs.id)
        assert await service.mark_all_read(ann) == 0
        assert await service.delete_read(ann) == 0
        assert await service.unread_count(ann) == 0
    [still] = await rows(db, bob)
    assert still.read_at is None


async def test_prune_deletes_only_notifications_older_than_the_cutoff(db, ann):
    start = clock.now()
    frozen = clock.FrozenClock(start)
    with clock.use_clock(frozen):
        await make(db, ann, 1, title="old")
        frozen.advance(seconds=1)
        await make(db, ann, 1, title="boundary")
        frozen.advance(days=90)
        async with db.writer() as session:
            # "old" is 90 days + 1 s old, "boundary" exactly 90 days: only "old" goes.
            assert await NotificationService(session).prune(timedelta(days=90)) == 1
    assert [n.title for n in await rows(db, ann)] == ["boundary"]


def emit(client, app, event: SecurityEvent) -> None:
    """Emit as a feature would; the app runs in the test's event loop (see tests/conftest.py)."""
    app.emit(SECURITY_EVENT, event, app.state)


def _event(name: str, subject: uuid.UUID | None, **details) -> SecurityEvent:
    return SecurityEvent(
        name=name,
        user_id=subject,
        actor_id=subject,
        outcome="success",
        ip_address="127.0.0.1",
        user_agent="pytest",
        request_id="req-1",
        occurred_at=clock.now(),
        details=details,
    )


# The details each feature really sends with the events that notify.
DETAILS = {
    "authn_login_new_device": {"browser": "Firefox 130", "os": "Linux", "ip": "203.0.113.9"},
    "authn_mfa_recovery_low": {"remaining": 2},
    "authn_mfa_recovery_used": {"remaining": 2},
    "authn_login_lock": {"reason": "two_factor_failures", "failures": 10, "first": True},
    "authz_role_change": {"old": "user", "new": "admin"},
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
async def test_security_event_becomes_a_notification(client, app, ann, name, db):
    event = _event(name, ann, **DETAILS.get(name, {}))
    if name == "authn_login_lock":  # a refused attempt: its outcome is a failure
        event = dataclasses.replace(event, outcome="failure")
    emit(client, app, event)
    [note] = await wait_for_rows(db, ann, 1)
    assert note.title == TEMPLATES[name].title
    assert note.data == {"event": name, "request_id": "req-1"}
    if name == "authn_login_new_device":
        assert "Firefox 130 on Linux (203.0.113.9)" in note.message
    if name == "authz_role_change":
        assert "from user to admin" in note.message
    if name in ("authn_mfa_recovery_low", "authn_mfa_recovery_used"):
        assert "2 left." in note.message
    if name == "authn_mfa_recovery_regenerated":
        assert "the old ones no longer work" in note.message
    if name == "authn_login_lock":
        assert note.type == "warning" and "10 wrong two-factor codes in a row" in note.message


async def test_other_security_events_make_no_notification(client, app, ann, db):
    emit(client, app, _event("authn_login_success", ann))
    emit(client, app, _event("authn_password_change", None))
    failed = _event("authn_mfa_disabled", ann)
    emit(client, app, dataclasses.replace(failed, outcome="failure"))
    # Only the first two-factor lock of a failure streak notifies; a plain sign-in or
    # confirmation throttle (429) never does, though it carries the same event name.
    for details in (
        {"context": "login", "retry_after": 60},
        {"context": "two_factor", "retry_after": 60},
        {"reason": "two_factor_failures", "failures": 11, "first": False},
    ):
        lock = _event("authn_login_lock", ann, **details)
        emit(client, app, dataclasses.replace(lock, outcome="failure"))
    # A later event that does notify proves the earlier ones have been handled.
    emit(client, app, _event("authn_email_change", ann))
    found = await wait_for_rows(db, ann, 1)
    assert [n.title for n in found] == ["Email address changed"]
