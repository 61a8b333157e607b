"""Declarative base, naming convention and the id/timestamp mixins every table uses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import clock
from shared.database.types import ISOTimestamp, UUIDv7, new_id

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Declarative base of every feature's tables; shares :data:`metadata`."""

    metadata = metadata
    type_annotation_map = {uuid.UUID: UUIDv7(), datetime: ISOTimestamp()}


class UUIDPrimaryKeyMixin:
    """``id``: a UUIDv7 primary key generated in Python."""

    id: Mapped[uuid.UUID] = mapped_column(
        UUIDv7(), primary_key=True, default=new_id, sort_order=-10
    )


def same_as_created_at(context: Any) -> datetime:
    """The default of a new row's ``updated_at``: its ``created_at``, which SQLAlchemy has
    already filled in (it comes first). One instant for both, even when the clock ticks
    between the two columns of one row."""
    created_at: datetime = context.get_current_parameters()["created_at"]
    return created_at


class TimestampMixin:
    """``created_at`` and ``updated_at`` (aware UTC), set in Python by :func:`shared.clock.now`;
    a new row's ``updated_at`` equals its ``created_at``."""

    created_at: Mapped[datetime] = mapped_column(ISOTimestamp(), default=clock.now, sort_order=10)
    updated_at: Mapped[datetime] = mapped_column(
        ISOTimestamp(), default=same_as_created_at, onupdate=clock.now, sort_order=10
    )
