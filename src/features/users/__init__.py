"""Users: the ``users`` table, account rules and the settings area."""

from pathlib import Path

from features.users.handlers import SettingsController

routes = [SettingsController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
