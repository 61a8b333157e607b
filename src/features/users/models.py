"""The ``users`` table: name, normalised email, password hash, role, status, email
verification, two-factor state and avatar."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from shared.database import Base, ISOTimestamp, TimestampMixin, UUIDPrimaryKeyMixin
from shared.database.types import enum_column


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
        enum_column(Role, "role"),
        default=Role.USER,
    )
    google_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
    two_factor_secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    two_factor_enabled: Mapped[bool] = mapped_column(
        Boolean(name="two_factor_enabled"), default=False
    )
    two_factor_confirmed_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
    # The chosen avatar (features.assets). users↔assets is a cycle, so this FK is created
    # after both tables (use_alter) and has a fixed name; deleting the asset clears it.
    avatar_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(
            "assets.id",
            ondelete="SET NULL",
            use_alter=True,
            name="fk_users_avatar_asset_id_assets",
        ),
        index=True,
    )
    # Account status (SECURITY.md S19): a disabled account cannot sign in and has no live session.
    disabled_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), nullable=True)

    # The last accepted TOTP time step (unix time // 30, fits a 32-bit integer for ~2000 years);
    # a code of that step or older is refused (SECURITY.md S28, RFC 6238 §5.2).
    two_factor_last_step: Mapped[int | None] = mapped_column(nullable=True)

    @property
    def is_disabled(self) -> bool:
        """True while an administrator has the account disabled."""
        return self.disabled_at is not None
