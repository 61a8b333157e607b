"""Admin actions in the application log.

Every admin action emits a security event (``shared.events``); this listener writes the
administrative ones to the ``slicestar.admin`` log with actor, subject and request id, so they
are on record even where no audit-trail feature is installed (SECURITY.md S52 lists "admin
actions"). Details never hold secrets.
"""

from __future__ import annotations

import logging

from litestar.datastructures import State
from litestar.events import listener

from shared.events import SECURITY_EVENT, SecurityEvent

logger = logging.getLogger("slicestar.admin")

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


@listener(SECURITY_EVENT)
async def log_admin_action(event: SecurityEvent, state: State) -> None:
    """Log ``event`` if it is an administrative action; ignore every other security event."""
    if event.name not in ADMIN_EVENTS:
        return
    logger.info(
        "%s subject=%s actor=%s details=%s ip=%s request_id=%s",
        event.name,
        event.user_id,
        event.actor_id,
        event.details,
        event.ip_address,
        event.request_id,
    )
