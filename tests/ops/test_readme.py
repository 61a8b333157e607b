"""The README stays true: every setting is documented, and the migration rules it states hold."""

from __future__ import annotations

import re

from alembic.config import Config
from alembic.script import ScriptDirectory

from shared.config import ROOT_DIR, Settings

README = (ROOT_DIR / "README.md").read_text()


def test_readme_names_every_setting() -> None:
    missing = [
        name.upper()
        for name in Settings.model_fields
        if not re.search(rf"\b{name.upper()}\b", README)
    ]
    assert missing == []


def test_migration_ids_are_unique_file_prefixes_with_one_head() -> None:
    script = ScriptDirectory.from_config(Config(str(ROOT_DIR / "alembic.ini")))
    assert len(script.get_heads()) == 1  # "alembic heads must show exactly one head"
    revisions = list(script.walk_revisions())
    ids = [r.revision for r in revisions]
    assert len(ids) == len(set(ids))
    for revision in revisions:  # the file name starts with the id the README tells you to pick
        name = revision.path.rsplit("/", 1)[-1]
        assert re.fullmatch(rf"{revision.revision}_[a-z0-9_]+\.py", name), name
    assert "--rev-id NNNN" in README
