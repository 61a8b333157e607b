"""The schema's composition root: imports every feature's tables into one ``metadata``.

Alembic's ``env.py`` and the tests use :func:`load_models`. A feature with tables adds its
``models`` module to :data:`FEATURE_MODELS`; deleting a feature deletes its line.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from shared.database.base import metadata

FEATURE_MODELS = (
    "features.users.models",
    "features.sessions.models",
    "features.tasks.models",
    "features.assets.models",
    "features.notifications.models",
    "features.core.auth.models",
    "features.core.auth.two_factor.models",
    "features.audit.models",
    "shared.security.throttle",
)


def load_models() -> MetaData:
    """Import every module in :data:`FEATURE_MODELS` and return the shared ``metadata``."""
    for name in FEATURE_MODELS:
        importlib.import_module(name)
    return metadata
