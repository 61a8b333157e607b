"""Sessions: the ``sessions`` table, the middleware that reads the cookie, the sessions page."""

from pathlib import Path

from features.sessions.handlers import SessionsController

routes: list = [SessionsController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
cli_module = "features.sessions.cli"  # its commands: imported only when the CLI starts
