"""Alembic migrations (``alembic.ini`` at the repository root points here)."""

from __future__ import annotations

from pathlib import Path


def head_revision(ini_path: Path) -> str | None:
    """Return the head revision id of the migration scripts named by ``ini_path``.

    Alembic is imported here, not with this package: a serving worker needs it only when
    ``/readyz`` first compares the database with the head (about 11 MiB of modules).
    """
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(ini_path))
    config.set_main_option("script_location", str(Path(__file__).parent))
    return ScriptDirectory.from_config(config).get_current_head()
