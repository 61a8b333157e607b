"""Authentication: sign-up, sign-in with "remember me", sign-out."""

from pathlib import Path

from features.core.auth.handlers import AuthController

routes = [AuthController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
