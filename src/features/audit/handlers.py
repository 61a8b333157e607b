"""The security activity page (HTTP only)."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.audit import service
from shared.web.client import describe_device
from shared.web.render import page

ACTIVITY_LIMIT = 50

LABELS = {
    "authn_login_success": "Signed in",
    "authn_login_fail": "Failed sign-in",
    "authn_login_lock": "Sign-in blocked (too many attempts)",
    "authn_logout": "Signed out",
    "authn_login_new_device": "Sign-in from a new device",
    "authn_password_change": "Password changed",
    "authn_password_reset": "Password reset",
    "authn_password_reset_request": "Password reset requested",
    "authn_email_change": "Email changed",
    "authn_email_change_request": "Email change requested",
    "authn_email_change_revert": "Email change undone",
    "authn_email_verified": "Email verified",
    "authn_mfa_enabled": "Two-factor authentication turned on",
    "authn_mfa_disabled": "Two-factor authentication turned off",
    "authn_mfa_fail": "Wrong two-factor code",
    "authn_mfa_replay": "Reused two-factor code refused",
    "authn_mfa_recovery_used": "Recovery code used",
    "authn_mfa_recovery_regenerated": "Recovery codes regenerated",
    "authn_mfa_recovery_low": "Few recovery codes left",
    "session_revoked": "Session ended",
    "session_revoked_all": "Signed out everywhere else",
    "authz_fail": "Access refused",
    "malicious_csrf": "Refused request from another site",
    "authz_role_change": "Role changed",
    "user_disabled": "Account disabled",
    "user_enabled": "Account enabled",
    "admin_sessions_revoked": "Sessions ended by an administrator",
    "admin_password_reset_sent": "Password reset sent by an administrator",
    "admin_email_verified": "Email verified by an administrator",
    "upload_rejected": "Upload refused",
    "user_created": "Account created",
    "user_deleted": "Account deleted",
}


class ActivityController(Controller):
    """``/settings/activity``: the last 50 security events about the signed-in user."""

    path = "/settings/activity"

    @get("/", name="audit.activity")
    async def activity(
        self, request: Request, db_session: NamedDependency[AsyncSession]
    ) -> Template:
        """Time, event, IP and device of the newest events, newest first."""
        events = await service.recent_for_user(db_session, request.user.id, ACTIVITY_LIMIT)
        rows = [
            {
                "event": e,
                "label": LABELS.get(e.event, e.event.replace("_", " ").capitalize()),
                "device": describe_device(e.user_agent) if e.user_agent else None,
            }
            for e in events
        ]
        return page(request, "audit/activity.html", {"section": "activity", "rows": rows})
