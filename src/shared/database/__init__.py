"""Database plumbing: engine and pragmas, column types, declarative base, repository base."""

from shared.database.base import Base, TimestampMixin, UUIDPrimaryKeyMixin, metadata
from shared.database.engine import Database
from shared.database.repository import Page, Repository, escape_like, paged
from shared.database.types import ISOTimestamp, UUIDv7, new_id

__all__ = [
    "Base",
    "Database",
    "ISOTimestamp",
    "Page",
    "Repository",
    "TimestampMixin",
    "UUIDPrimaryKeyMixin",
    "UUIDv7",
    "escape_like",
    "metadata",
    "new_id",
    "paged",
]
