"""Authentication: sign-up with email verification, sign-in with "remember me", sign-out,
password reset, and the mails about account security."""

from pathlib import Path

from features.core.auth.handlers import AuthController
from features.core.auth.links import EmailLinkController
from features.core.auth.listeners import mail_security_notice

routes = [AuthController, EmailLinkController]
template_dir = Path(__file__).parent / "templates"
listeners = [mail_security_notice]
# Pages whose first visit (no cookie, no query) depends on nothing but the settings and the
# answer's own secrets: served from a snapshot (shared.web.first_visit).
first_visit_pages = ("/login", "/register")
