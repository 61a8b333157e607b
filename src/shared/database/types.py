"""Column types shared by every table (DESIGN.md §2).

- :class:`UUIDv7`: ``uuid.UUID`` in Python; canonical 36-character lower-case text on SQLite,
  native ``uuid`` on PostgreSQL.
- :class:`ISOTimestamp`: timezone-aware UTC ``datetime`` in Python; ISO-8601 text with
  milliseconds and ``Z`` on SQLite (``2024-01-15T10:30:00.000Z``, sortable as text),
  ``timestamptz`` on PostgreSQL.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import uuid6
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def new_id() -> uuid.UUID:
    """Return a new time-ordered UUIDv7 (RFC 9562 §5.7) as a ``uuid.UUID``."""
    return uuid.UUID(int=uuid6.uuid7().int)


class UUIDv7(TypeDecorator[uuid.UUID]):
    """A UUID primary/foreign key column. Accepts ``uuid.UUID`` or its text form on bind."""

    impl = sa.String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(sa.String(36))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, uuid.UUID):
            value = uuid.UUID(str(value))
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # SQLite returns text: one call per value instead of TypeDecorator's two (every
        # page converts a few dozen of these).
        if dialect.name == "sqlite":
            return _uuid_from_text
        return super().result_processor(dialect, coltype)


def _uuid_from_text(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def format_timestamp(value: datetime) -> str:
    """Format an aware ``datetime`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC.

    Raises ``ValueError`` for a naive ``datetime`` (a time without a zone is a bug).
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    # ``isoformat`` truncates to milliseconds like ``microsecond // 1000``; in UTC the offset
    # is always ``+00:00``, written ``Z``. (Several times faster than ``strftime``.)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_timestamp(value: str) -> datetime:
    """Parse the text written by :func:`format_timestamp` back into an aware UTC ``datetime``
    (any other ISO-8601 text with an offset is converted to UTC)."""
    parsed = datetime.fromisoformat(value)  # reads the ``Z`` of format_timestamp as UTC
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def _timestamp_from_text(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


class ISOTimestamp(TypeDecorator[datetime]):
    """A point in time, always UTC and timezone-aware in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(24))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format_timestamp(value)
        if value.tzinfo is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_timestamp(value)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":  # text: one call per value (see UUIDv7)
            return _timestamp_from_text
        return super().result_processor(dialect, coltype)


def enum_column(enum_class: type[enum.Enum], name: str) -> sa.Enum:
    """A non-native enum stored as its values' text, with a named CHECK constraint (DESIGN.md §2).

    ``name`` names the constraint (``ck_<table>_<name>`` through the naming convention).
    """
    return sa.Enum(
        enum_class,
        native_enum=False,
        create_constraint=True,
        length=16,
        name=name,
        values_callable=lambda members: [m.value for m in members],
    )
