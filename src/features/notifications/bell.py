"""The bell's list of newest notifications, rendered once per distinct content.

The navigation bell is on every signed-in page, and its list of the ten newest notifications
took more CPU to render than any other part of the layout (about 0.4 ms of a dashboard's
0.85 ms of rendering, measured in process): ten rows, each with three date filters and a
dozen escaped values. Between two page views of one user that list rarely changes: only a
new notification, a notification read or deleted, or the passing of time ("3 minutes ago")
changes it. :class:`RenderedBellLists` keeps each rendered list under a key made of
everything the template reads, the rows themselves and the relative times shown, so an
equal key can only mean equal HTML; a change to any row, or a new relative time, is a new
key and a fresh render. Nothing needs to be told of a change, and no other worker's
writes can leave a list stale.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment
from litestar import Litestar
from markupsafe import Markup

from shared.web.templating import time_ago

LIST_TEMPLATE = "notifications/_bell_list.html"
#: Lists kept per worker. An entry (its rows and about 3.5 KB of HTML) takes about 7 KB,
#: so the cache stays under 2 MB; the least recently shown list goes first.
DEFAULT_SIZE = 256


class RenderedBellLists:
    """A least-recently-used cache of rendered bell lists (``notifications/_bell_list.html``).

    ``render(recent, now)`` takes the bell's rows (:class:`~features.notifications.repository.
    Bell` ``recent``, newest first, at least one) and the current time (aware UTC) and returns
    the list as safe HTML (``Markup``). Not thread-safe: one instance serves one event loop.
    Where the environment reloads edited templates (development), nothing is kept. Raises
    ``ValueError`` for a ``size`` below 1.
    """

    def __init__(self, env: Environment, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._env = env
        self._size = size
        self._lists: OrderedDict[tuple[Any, ...], Markup] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lists)

    def render(self, recent: Sequence[Any], now: datetime) -> Markup:
        """The list's HTML: from the cache when the rows and their relative times are equal
        to a list rendered before, else rendered now (and kept)."""
        ages = tuple(time_ago(row.created_at, now) for row in recent)
        if self._env.auto_reload:  # an edited template must show at once
            return self._render(recent, ages)
        key = (tuple(recent), ages)
        html = self._lists.get(key)
        if html is not None:
            self._lists.move_to_end(key)
            return html
        html = self._lists[key] = self._render(recent, ages)
        if len(self._lists) > self._size:
            self._lists.popitem(last=False)
        return html

    def _render(self, recent: Sequence[Any], ages: tuple[str, ...]) -> Markup:
        template = self._env.get_template(LIST_TEMPLATE)  # compiled once, then looked up
        items = list(zip(recent, ages, strict=True))
        # An autoescaped template's output is safe HTML (every value in it escaped, S51).
        return Markup(template.render(items=items))  # noqa: S704


STATE_KEY = "notification_bell_lists"  # app.state: the app's RenderedBellLists


def keep_rendered_bell_lists(app: Litestar) -> None:
    """Setup hook: give the built ``app`` its :class:`RenderedBellLists` (``app.state``
    under :data:`STATE_KEY`), made from the app's Jinja environment."""
    app.state[STATE_KEY] = RenderedBellLists(app.template_engine.engine)  # type: ignore[union-attr]
