"""pyproject.toml declares what the code imports, and nothing it does not use.

Every third-party module imported by ``src/`` and ``docker/`` must come from a distribution
listed in ``[project].dependencies``; modules imported only by ``tests/`` may also come from the
``dev`` group. The distribution is found from the file the import actually loads (its
``RECORD``), so a look-alike package that happens to be installed cannot stand in for the one
the code uses. A declared runtime dependency that nothing imports must be in
:data:`RUNTIME_ONLY`, with the reason it is needed.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import distributions

from shared.config import ROOT_DIR

FIRST_PARTY = {"app", "bench", "features", "models", "shared", "tests"}
# Declared but never imported, on purpose:
RUNTIME_ONLY = {
    "uvicorn": "`litestar run` (make run) and the test servers serve with it",
    "granian": "the production server (docker/entrypoint.sh)",
    "aiosqlite": "SQLAlchemy loads it for sqlite+aiosqlite:// URLs",
    "asyncpg": "SQLAlchemy loads it for postgresql+asyncpg:// URLs",
    "aiosmtplib": "SMTP delivery for MAIL_URL=smtp://… (the mail code that sends it)",
}


def _name(requirement: str) -> str:
    """``"sqlalchemy[asyncio]>=2"`` → ``"sqlalchemy"`` (PEP 503 normalised)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


PYPROJECT = tomllib.loads((ROOT_DIR / "pyproject.toml").read_text())
RUNTIME = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
DEV = {_name(r) for r in PYPROJECT["dependency-groups"]["dev"]}


def _imports(*folders: str) -> set[str]:
    """Top-level names of the absolute imports in every ``.py`` file under ``folders``."""
    names = set()
    for folder in folders:
        for path in (ROOT_DIR / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY}


@cache
def _owners() -> dict[str, str]:
    """Every installed file (normalised path) → the name of the distribution that installed it."""
    owners = {}
    for dist in distributions():
        name = _name(dist.metadata["Name"])
        for file in dist.files or ():
            owners[os.path.normpath(dist.locate_file(file))] = name
    return owners


def _distribution_of(module: str) -> str:
    """The distribution that installed the file ``import module`` really loads."""
    loaded = importlib.import_module(module)
    assert loaded.__file__, f"{module} has no file"
    origin = os.path.normpath(loaded.__file__)
    assert origin in _owners(), f"no installed distribution owns {origin}"
    return _owners()[origin]


def test_every_module_the_app_imports_is_a_declared_dependency() -> None:
    used = {module: _distribution_of(module) for module in _imports("src", "docker")}
    undeclared = {m: d for m, d in used.items() if d not in RUNTIME}
    assert undeclared == {}, "declare these in [project].dependencies"


def test_every_module_the_tests_import_is_declared() -> None:
    used = {module: _distribution_of(module) for module in _imports("tests")}
    undeclared = {m: d for m, d in used.items() if d not in RUNTIME | DEV}
    assert undeclared == {}, "declare these in [dependency-groups].dev"


def test_every_runtime_dependency_is_used() -> None:
    imported = {_distribution_of(module) for module in _imports("src", "docker")}
    unused = RUNTIME - imported - set(RUNTIME_ONLY)
    assert unused == set(), "drop these from [project].dependencies (or say why in RUNTIME_ONLY)"
    assert set(RUNTIME_ONLY) <= RUNTIME, "RUNTIME_ONLY names a package that is not declared"


LAZY_MODULES = (
    "alembic",
    "ua_parser",
    "cryptography",
    "PIL",
    "puremagic",
    "segno",
    "click",
    "rich",
)


def test_a_serving_worker_loads_heavy_modules_only_when_used() -> None:
    # Each costs a worker 1-26 MiB for the rest of its life; the first /readyz, sign-in,
    # two-factor operation and upload load the first four (shared/web/health.py,
    # shared/web/client.py, shared/security/encryption.py, features/assets/content.py),
    # a PDF-like upload puremagic (content.py), the first two-factor setup segno (its QR
    # code, two_factor/service.py); click and rich come with the CLI only (app.FeatureCLI).
    probe = (
        "import sys; from app import create_app; from shared.config import Settings;"
        "create_app(Settings(app_env='production', secret_key='k' * 48));"
        f"print(sorted(m for m in {LAZY_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT_DIR / "src",
        env={**os.environ, "PYTHONPATH": str(ROOT_DIR / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr[-2000:]
