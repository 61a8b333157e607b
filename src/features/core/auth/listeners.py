"""Security events that warrant a mail to the account's owner.

The features that emit these events (sign-in, settings, two-factor) do not know this module
(``shared.events``). Each listener runs after the response; it reads the account's current
address and queues the mail, and logs (never raises) when something fails. Notices go only to
verified addresses, except the reset confirmation: following a reset link proves the address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from litestar.datastructures import State
from litestar.events import listener

from features.core.auth import mails
from features.users.service import UserService
from shared.events import SECURITY_EVENT, SecurityEvent
from shared.mail import Mailer

logger = logging.getLogger(__name__)

Notice = Callable[[Mailer, str, str, SecurityEvent], bool]

NOTICES: dict[str, Notice] = {
    "authn_login_new_device": lambda m, to, name, e: mails.new_sign_in(m, to, name, e.details),
    "authn_password_change": lambda m, to, name, _: mails.password_was_changed(m, to, name),
    "authn_password_reset": lambda m, to, name, _: mails.password_was_reset(m, to, name),
    "authn_mfa_disabled": lambda m, to, name, _: mails.two_factor_disabled(m, to, name),
}


@listener(SECURITY_EVENT)
async def mail_security_notice(event: SecurityEvent, state: State) -> None:
    """Mail the account's owner about ``event`` when it is in :data:`NOTICES` and succeeded."""
    notice = NOTICES.get(event.name)
    if notice is None or event.user_id is None or event.outcome != "success":
        return
    try:
        async with state.db.reader() as session:
            user = await UserService(session).get(event.user_id)
        if user is None or (
            user.email_verified_at is None and event.name != "authn_password_reset"
        ):
            return
        notice(state.mail, user.email, user.name, event)
    except Exception:
        logger.exception("could not queue the %s mail", event.name)
