"""Audit trail: the ``audit_events`` table, its listener and the security activity page (S52)."""

from pathlib import Path

from features.audit.cli import audit_group
from features.audit.handlers import ActivityController
from features.audit.service import record_security_event

routes = [ActivityController]
template_dir = Path(__file__).parent / "templates"
listeners = [record_security_event]
cli_commands = [audit_group]
