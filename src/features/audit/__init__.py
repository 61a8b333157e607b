"""Audit trail: the ``audit_events`` table, its listener and the security activity page (S52)."""

from pathlib import Path

from features.audit.handlers import ActivityController
from features.audit.service import record_security_event
from features.audit.writer import lifespan

routes = [ActivityController]
template_dir = Path(__file__).parent / "templates"
listeners = [record_security_event]
lifespans = [lifespan]
cli_module = "features.audit.cli"  # its commands: imported only when the CLI starts
