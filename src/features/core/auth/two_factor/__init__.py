"""Two-factor authentication (TOTP with recovery codes): Settings → Security and the login
challenge (SECURITY.md S12, S20, S25–S31)."""

from pathlib import Path

from features.core.auth.two_factor.handlers import (
    SecuritySettingsController,
    TwoFactorChallengeController,
)

routes = [SecuritySettingsController, TwoFactorChallengeController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
