"""Sessions: the ``sessions`` table, the middleware that reads the cookie, the sessions page."""

from pathlib import Path

from features.sessions.cli import sessions_group
from features.sessions.handlers import SessionsController

routes: list = [SessionsController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
cli_commands = [sessions_group]
