"""Account settings: profile (name, email change), password, account deletion (SECURITY.md
S3, S4, S18, S20, S37)."""

from pathlib import Path

from features.core.auth.account.handlers import (
    AccountController,
    EmailChangeLinkController,
    EmailRevertLinkController,
)

routes = [AccountController, EmailChangeLinkController, EmailRevertLinkController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
