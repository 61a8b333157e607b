"""Application events: how one feature tells others that something happened.

A feature calls :func:`emit_security_event` (or ``request.app.emit`` with its own event id);
listeners in other features (audit trail, notifications, mail) subscribe with
``litestar.events.listener(SECURITY_EVENT)``. The emitter never imports a listener.

Event names follow the OWASP Logging Vocabulary (``authn_login_success``,
``authn_login_fail``, ``authn_password_change``, ``session_revoked``, ``authz_fail``,
``malicious_csrf``, ...). Details never carry passwords, codes, tokens or session ids (S52).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from litestar import Litestar
from litestar.connection import ASGIConnection

from shared import clock
from shared.web.client import client_ip, user_agent
from shared.web.context import request_id

SECURITY_EVENT = "security_event"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One security-relevant fact.

    ``user_id`` is the account the event is about (the subject), ``actor_id`` who caused it
    (``None`` for anonymous; equal to ``user_id`` for self-service). ``details`` is a small
    JSON-serialisable dict without secrets.
    """

    name: str
    user_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    outcome: Literal["success", "failure"]
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    occurred_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


def emit_security_event(
    connection: ASGIConnection,
    name: str,
    *,
    user_id: uuid.UUID | None,
    actor_id: uuid.UUID | None = None,
    outcome: Literal["success", "failure"] = "success",
    **details: Any,
) -> SecurityEvent:
    """Emit ``name`` about ``user_id`` to every listener of :data:`SECURITY_EVENT`.

    The actor defaults to the signed-in user of ``connection``. Listeners are called as
    ``listener(event: SecurityEvent, state: State)`` and run after this returns.
    """
    current = connection.scope.get("user")
    event = SecurityEvent(
        name=name,
        user_id=user_id,
        actor_id=actor_id if actor_id is not None else (current.id if current else None),
        outcome=outcome,
        ip_address=client_ip(connection),
        user_agent=user_agent(connection),
        request_id=request_id(connection.scope),
        occurred_at=clock.now(),
        details=details,
    )
    emit(connection.app, SECURITY_EVENT, event, connection.app.state)
    return event


def offline_security_event(
    name: str,
    *,
    user_id: uuid.UUID | None,
    actor_id: uuid.UUID | None = None,
    outcome: Literal["success", "failure"] = "success",
    **details: Any,
) -> SecurityEvent:
    """A :class:`SecurityEvent` for work outside a request (the command line, background jobs):
    no IP address, user agent or request id. The caller says where it came from in
    ``details`` (e.g. ``via="cli"``) and hands it to the audit trail itself
    (``features.audit.service.record``): no app is running to emit it to listeners.
    """
    return SecurityEvent(
        name=name,
        user_id=user_id,
        actor_id=actor_id,
        outcome=outcome,
        ip_address=None,
        user_agent=None,
        request_id=None,
        occurred_at=clock.now(),
        details=details,
    )


def emit(app: Litestar, event_id: str, *args: Any) -> None:
    """``app.emit(event_id, *args)`` when someone listens; nothing otherwise.

    Litestar's emitter raises ``ImproperlyConfiguredException`` for an event without
    listeners, which would turn a finished action into a 500 while no feature listens yet.
    """
    listeners = getattr(app.event_emitter, "listeners", None)
    if listeners is not None and not listeners.get(event_id):
        return
    app.emit(event_id, *args)
