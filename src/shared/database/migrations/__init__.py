"""Alembic migrations (``alembic.ini`` at the repository root points here)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory


def head_revision(ini_path: Path) -> str | None:
    """Return the head revision id of the migration scripts named by ``ini_path``."""
    config = Config(str(ini_path))
    config.set_main_option("script_location", str(Path(__file__).parent))
    return ScriptDirectory.from_config(config).get_current_head()
