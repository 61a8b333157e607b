"""Notifications: stored per user, counted in the navigation bell, pushed live to every tab."""

from pathlib import Path

from features.notifications.bell import keep_rendered_bell_lists
from features.notifications.handlers import NotificationController, bell_context
from features.notifications.live import lifespan
from features.notifications.reactions import notify_on_security_event

routes = [NotificationController]
template_dir = Path(__file__).parent / "templates"
listeners = [notify_on_security_event]
lifespans = [lifespan]
template_context = [bell_context]
setup_hooks = [keep_rendered_bell_lists]
cli_module = "features.notifications.cli"  # its commands: imported only when the CLI starts
