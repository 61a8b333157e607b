"""Account settings entry point (HTTP only). Each feature adds its own settings sections:
profile, password and deletion live in ``features.core.auth.account``, security in
``two_factor``, sessions in ``sessions``, activity in ``audit``."""

from __future__ import annotations

from litestar import Controller, get
from litestar.response import Redirect


class SettingsController(Controller):
    """``/settings``."""

    path = "/settings"

    @get("/", name="settings")
    async def index(self) -> Redirect:
        """The settings area opens on the profile section."""
        return Redirect("/settings/profile", status_code=303)
