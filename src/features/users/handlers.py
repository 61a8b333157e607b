"""Account settings pages (HTTP only). Other features add their own settings sections."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Redirect, Template

from shared.web.render import page


class SettingsController(Controller):
    """``/settings`` and the profile section."""

    path = "/settings"

    @get("/", name="settings")
    async def index(self) -> Redirect:
        """The settings area opens on the profile section."""
        return Redirect("/settings/profile", status_code=303)

    @get("/profile", name="settings.profile")
    async def profile(self, request: Request) -> Template:
        """Who you are: name and email."""
        return page(request, "users/profile.html", {"section": "profile"})
