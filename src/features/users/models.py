"""The ``users`` table (columns as in the seed schema, reference/seed-002-velist-database.md)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.database import Base, ISOTimestamp, TimestampMixin, UUIDPrimaryKeyMixin


class Role(enum.StrEnum):
    """What a user may do: ``user`` (own data) or ``admin`` (the admin area)."""

    USER = "user"
    ADMIN = "admin"


class User(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A person who can sign in. ``email`` is stored normalised (see ``users.service``)."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            create_constraint=True,
            length=16,
            name="role",
            values_callable=lambda e: [m.value for m in e],
        ),
        default=Role.USER,
    )
    google_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
    two_factor_secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    two_factor_enabled: Mapped[bool] = mapped_column(
        Boolean(name="two_factor_enabled"), default=False
    )
    two_factor_confirmed_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
    # The last accepted TOTP time step (unix time // 30, fits a 32-bit integer for ~2000 years);
    # a code of that step or older is refused (SECURITY.md S28, RFC 6238 §5.2).
    two_factor_last_step: Mapped[int | None] = mapped_column(nullable=True)
