"""Task form and list-query shapes, with their validation messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from features.tasks.models import TITLE_MAX, TaskStatus
from features.tasks.repository import SORTS

PER_PAGE = 20
STATUS_FILTERS = ("all", "pending", "completed")


def parse_title(raw: str) -> tuple[str | None, str | None]:
    """Return ``(title, None)`` or ``(None, error)``. Whitespace is trimmed and runs collapsed."""
    title = " ".join(raw.split())
    if not title:
        return None, "Enter a title."
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in title):
        return None, "A title cannot contain control characters."
    if len(title) > TITLE_MAX:
        return None, f"A title has at most {TITLE_MAX} characters (this one has {len(title)})."
    return title, None


def parse_task_id(raw: str) -> uuid.UUID | None:
    """Return the UUID in ``raw`` or ``None`` when it is not one (answer 404 then)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """The list page's query: search text, status filter, sort key and 1-based page."""

    q: str = ""
    status: str = "all"
    sort: str = "created"
    page: int = 1

    @property
    def status_filter(self) -> TaskStatus | None:
        """The status to filter on, or ``None`` for ``all``. ``status`` was validated against
        ``STATUS_FILTERS`` by :func:`parse_query`, so this raises nothing."""
        return None if self.status == "all" else TaskStatus(self.status)


def parse_query(params: dict[str, str]) -> tuple[TaskQuery, dict[str, str], bool]:
    """Validate the list query string.

    Returns ``(query, errors, page_invalid)``: ``errors`` name fields with unknown values (the
    page answers 422 and shows the defaults); ``page_invalid`` is True when ``page`` is not a
    positive whole number (the page answers 404).
    """
    errors: dict[str, str] = {}
    # Control characters (NUL among them, which PostgreSQL refuses) cannot be in a title.
    q = "".join(c for c in " ".join(params.get("q", "").split()) if ord(c) >= 0x20)[:TITLE_MAX]
    status = params.get("status") or "all"
    if status not in STATUS_FILTERS:
        errors["status"] = "Unknown status filter; choose all, pending or completed."
        status = "all"
    sort = params.get("sort") or "created"
    if sort not in SORTS:
        errors["sort"] = f"Unknown sort order; choose one of: {', '.join(SORTS)}."
        sort = "created"
    raw_page = params.get("page") or "1"
    page_invalid = not (raw_page.isascii() and raw_page.isdigit() and 0 < int(raw_page) < 10**9)
    page = 1 if page_invalid else int(raw_page)
    return TaskQuery(q=q, status=status, sort=sort, page=page), errors, page_invalid
