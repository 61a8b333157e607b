"""The ``assets`` table: one uploaded file of one user (seed schema, SECURITY.md S41–S46).

Seed columns: id, user_id, filename, original_name, mime_type, size, path, url, metadata
(JSON ``{width, height, format}``), created_at. Added: ``thumbnail_path`` (images only) and
``checksum`` (SHA-256 hex of the stored file).

- ``filename`` is the server-made stored name (``<uuid7>.<ext>``); ``original_name`` the
  sanitised name the person gave, display text only (S43).
- ``path`` is the storage key ``<user_id>/<filename>``; ``url`` the owner-checked route that
  serves it (``/assets/<id>/file``), never a public static URL (S46).
- ``mime_type`` is the type decided from the bytes (S42); ``size`` the stored bytes, which
  count against the quota.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared import clock
from shared.database import Base, ISOTimestamp, UUIDPrimaryKeyMixin, UUIDv7

ORIGINAL_NAME_MAX = 255


class Asset(UUIDPrimaryKeyMixin, Base):
    """One stored file (images are stored re-encoded as WebP, plus a thumbnail)."""

    __tablename__ = "assets"
    __table_args__ = (Index("ix_assets_user_id_created_at", "user_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUIDv7(), ForeignKey("users.id", ondelete="CASCADE")
    )  # indexed by ix_assets_user_id_created_at
    filename: Mapped[str] = mapped_column(String(64))
    original_name: Mapped[str] = mapped_column(String(ORIGINAL_NAME_MAX))
    mime_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger())
    path: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(String(128))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    thumbnail_path: Mapped[str | None] = mapped_column(String(128), nullable=True)
    checksum: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp(), default=clock.now)

    @property
    def is_image(self) -> bool:
        """True for re-encoded images (served inline, have a thumbnail)."""
        return self.mime_type == "image/webp"
