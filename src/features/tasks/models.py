"""The ``tasks`` table: per-user to-dos, the example CRUD feature."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.database import Base, TimestampMixin, UUIDPrimaryKeyMixin, UUIDv7
from shared.database.types import enum_column

TITLE_MAX = 200


class TaskStatus(enum.StrEnum):
    """A task is ``pending`` until it is ``completed`` (and can go back)."""

    PENDING = "pending"
    COMPLETED = "completed"


class Task(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """One task owned by one user (deleted with the user)."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_id_created_at", "user_id", "created_at"),
        # Covers the dashboard's figures (shared/database/migrations 0012).
        Index("ix_tasks_user_id_status_created_at", "user_id", "status", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="CASCADE")
    )  # indexed by the composite indexes below
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    status: Mapped[TaskStatus] = mapped_column(
        enum_column(TaskStatus, "task_status"),
        default=TaskStatus.PENDING,
    )
