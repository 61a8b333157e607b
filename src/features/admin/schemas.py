"""Query and form shapes of the admin area, with their validation messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from features.users.service import SORTS, Role, UserFilter

PER_PAGE = 25
SEARCH_MAX = 254
ROLE_FILTERS = ("all", "user", "admin")
STATUS_FILTERS = ("all", "active", "disabled")
VERIFIED_FILTERS = ("all", "yes", "no")
TWO_FACTOR_FILTERS = ("all", "on", "off")
SORT_LABELS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "name": "Name",
    "email": "Email",
    "last_login": "Last sign-in",
}
DEFAULTS = {
    "q": "",
    "role": "all",
    "status": "all",
    "verified": "all",
    "two_factor": "all",
    "sort": "newest",
    "page": 1,
}
_CHOICES = {
    "role": ROLE_FILTERS,
    "status": STATUS_FILTERS,
    "verified": VERIFIED_FILTERS,
    "two_factor": TWO_FACTOR_FILTERS,
}


@dataclass(frozen=True, slots=True)
class UserQuery:
    """The admin user list's query string: search text, four filters, sort key, 1-based page."""

    q: str = ""
    role: str = "all"
    status: str = "all"
    verified: str = "all"
    two_factor: str = "all"
    sort: str = "newest"
    page: int = 1

    @property
    def is_filtered(self) -> bool:
        """True when search text or any filter differs from its default (sort and page do not
        count)."""
        return any(
            getattr(self, k) != DEFAULTS[k]
            for k in ("q", "role", "status", "verified", "two_factor")
        )

    def to_filter(self) -> UserFilter:
        """The repository filter this query stands for."""
        yes_no = {"all": None, "yes": True, "no": False, "on": True, "off": False}
        return UserFilter(
            text=self.q,
            role=None if self.role == "all" else Role(self.role),
            disabled=None if self.status == "all" else self.status == "disabled",
            verified=yes_no[self.verified],
            two_factor=yes_no[self.two_factor],
        )

    def params(self, **changes: object) -> dict[str, object]:
        """The non-default query parameters, with ``changes`` applied."""
        values: dict[str, object] = {k: getattr(self, k) for k in DEFAULTS}
        values.update(changes)
        return {k: v for k, v in values.items() if v != DEFAULTS[k]}


def parse_user_query(params: dict[str, str]) -> tuple[UserQuery, dict[str, str], bool]:
    """Validate the list's query string (S49: every filter and the sort are allow-listed).

    The search text is cut to 254 characters, control characters removed, whitespace collapsed.
    Returns ``(query, errors, page_invalid)``: unknown values are reported in ``errors`` (the
    page answers 422 with the defaults); ``page_invalid`` when ``page`` is not a positive
    whole number (the page answers 404).
    """
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, choices in _CHOICES.items():
        value = params.get(name) or "all"
        if value not in choices:
            errors[name] = f"Unknown value; choose one of: {', '.join(choices)}."
            value = "all"
        values[name] = value
    sort = params.get("sort") or "newest"
    if sort not in SORTS:
        errors["sort"] = f"Unknown sort order; choose one of: {', '.join(SORTS)}."
        sort = "newest"
    # Control characters match nothing and PostgreSQL refuses NUL in text: drop them.
    raw_q = "".join(c for c in params.get("q", "") if c >= " " and c != "\x7f")
    q = " ".join(raw_q.split())[:SEARCH_MAX]
    raw_page = params.get("page") or "1"
    page_invalid = not (raw_page.isascii() and raw_page.isdigit() and 0 < int(raw_page) < 10**9)
    page = 1 if page_invalid else int(raw_page)
    return UserQuery(q=q, sort=sort, page=page, **values), errors, page_invalid


def parse_user_id(raw: str) -> uuid.UUID | None:
    """The UUID in ``raw``, or ``None`` when it is not one (answer 404 then)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def parse_role(raw: str) -> Role | None:
    """The role named in a form (``user`` or ``admin``), or ``None``."""
    try:
        return Role(raw)
    except ValueError:
        return None
