"""Admin: figures, user management, the ``users`` and ``db seed``/``db refresh`` commands."""

from pathlib import Path

from features.admin.cli import db_refresh, db_seed, users_group
from features.admin.events import log_admin_action
from features.admin.handlers import AdminController

routes = [AdminController]
template_dir = Path(__file__).parent / "templates"
listeners = [log_admin_action]
cli_commands = [users_group]
db_commands = [db_seed, db_refresh]
