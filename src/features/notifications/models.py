"""The ``notifications`` table: short messages for one user, unread until ``read_at`` is set."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared import clock
from shared.database import Base, ISOTimestamp, UUIDPrimaryKeyMixin, UUIDv7

TITLE_MAX = 200
MESSAGE_MAX = 1000
LINK_MAX = 500


class NotificationType(enum.StrEnum):
    """How the notification is shown (colour and icon): info, success, warning or error."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


class Notification(UUIDPrimaryKeyMixin, Base):
    """One notification owned by one user (deleted with the user).

    ``id`` is a UUIDv7, so ordering by ``id`` is ordering by creation time; the live poller
    relies on that. ``link`` is a same-site path or ``None``; ``data`` is small JSON detail.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        # The unread count: WHERE user_id = ? AND read_at IS NULL.
        Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
        # The newest-first list: WHERE user_id = ? ORDER BY created_at DESC, id DESC.
        Index("ix_notifications_user_id_created_at", "user_id", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="CASCADE")
    )  # indexed by the composite indexes above
    type: Mapped[NotificationType] = mapped_column(
        Enum(
            NotificationType,
            native_enum=False,
            create_constraint=True,
            length=16,
            name="notification_type",
            values_callable=lambda e: [m.value for m in e],
        ),
        default=NotificationType.INFO,
    )
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    message: Mapped[str] = mapped_column(String(MESSAGE_MAX))
    link: Mapped[str | None] = mapped_column(String(LINK_MAX), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    read_at: Mapped[datetime | None] = mapped_column(ISOTimestamp(), default=None)
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp(), default=clock.now, sort_order=10)

    @property
    def is_read(self) -> bool:
        """True once the owner marked it read (``read_at`` is set)."""
        return self.read_at is not None
