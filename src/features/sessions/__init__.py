"""Sessions: the server-side ``sessions`` table and the middleware that reads the cookie."""

from pathlib import Path

routes: list = []
template_dir = Path(__file__).parent / "templates"
listeners: list = []
