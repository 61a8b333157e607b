"""Tasks: the example CRUD feature (per-user to-dos)."""

from pathlib import Path

from features.tasks.handlers import TaskController

routes = [TaskController]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
