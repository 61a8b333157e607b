"""Dashboard: the signed-in home page."""

from pathlib import Path

from features.dashboard.handlers import dashboard

routes = [dashboard]
template_dir = Path(__file__).parent / "templates"
listeners: list = []
