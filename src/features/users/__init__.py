"""Users: the ``users`` table and the rules about accounts."""

from pathlib import Path

routes: list = []
template_dir = Path(__file__).parent / "templates"
listeners: list = []
