"""Admin: figures, user management, the ``users`` and ``db seed``/``db refresh`` commands."""

from pathlib import Path

from features.admin.events import log_admin_action
from features.admin.handlers import AdminController

routes = [AdminController]
template_dir = Path(__file__).parent / "templates"
listeners = [log_admin_action]
cli_module = "features.admin.cli"  # its commands: imported only when the CLI starts
