"""The ``ops_dir`` fixture: a folder with a migrated database for one server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.server import ops_folder


@pytest.fixture
def ops_dir(sqlite_template: Path, tmp_path: Path) -> Path:
    return ops_folder(sqlite_template, tmp_path)
