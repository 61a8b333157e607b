"""Backups: ``litestar db backup`` / ``backups`` / ``restore`` and the optional in-app schedule."""

from pathlib import Path

from features.backup.cli import backup_command, list_command, restore_command
from features.backup.schedule import scheduled_backups

routes: list = []  # backups are never served over HTTP
template_dir = Path(__file__).parent / "templates"
listeners: list = []
db_commands = [backup_command, list_command, restore_command]
lifespans = [scheduled_backups]
