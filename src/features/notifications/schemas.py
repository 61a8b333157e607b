"""Notification list-query shapes and id parsing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

PER_PAGE = 20
FILTERS = ("all", "unread")


def parse_id(raw: str | None) -> uuid.UUID | None:
    """Return the UUID in ``raw`` or ``None`` when it is not one (answer 404 then)."""
    try:
        return uuid.UUID(raw or "")
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class NotificationQuery:
    """The list page's query: ``filter`` (all/unread) and 1-based ``page``."""

    filter: str = "all"
    page: int = 1

    @property
    def unread_only(self) -> bool:
        """True for the ``unread`` filter."""
        return self.filter == "unread"

    def url(self, **changes: object) -> str:
        """``/notifications?...`` with ``changes`` applied; defaults are left out."""
        values = {"filter": self.filter, "page": self.page, **changes}
        params = [f"{k}={v}" for k, v in values.items() if v not in ("all", 1)]
        return "/notifications" + (f"?{'&'.join(params)}" if params else "")


def parse_query(params: dict[str, str]) -> tuple[NotificationQuery, dict[str, str], bool]:
    """Validate the list query. Returns ``(query, errors, page_invalid)``: an unknown filter is
    an error (422, the default is shown); a page that is not a positive whole number → 404.
    """
    errors: dict[str, str] = {}
    filter_ = params.get("filter") or "all"
    if filter_ not in FILTERS:
        errors["filter"] = "Unknown filter; choose all or unread."
        filter_ = "all"
    raw_page = params.get("page") or "1"
    page_invalid = not (raw_page.isascii() and raw_page.isdigit() and 0 < int(raw_page) < 10**9)
    page = 1 if page_invalid else int(raw_page)
    return NotificationQuery(filter=filter_, page=page), errors, page_invalid
