"""Backups: ``litestar db backup`` / ``backups`` / ``restore`` and the optional in-app schedule."""

from pathlib import Path

from features.backup.schedule import scheduled_backups

routes: list = []  # backups are never served over HTTP
template_dir = Path(__file__).parent / "templates"
listeners: list = []
lifespans = [scheduled_backups]
cli_module = "features.backup.cli"  # its commands: imported only when the CLI starts
