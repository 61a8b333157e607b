"""The signed-in home page with real figures."""

from __future__ import annotations

from datetime import datetime, timedelta

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.tasks.service import TaskService
from shared import clock
from shared.web.render import page


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week containing ``now``."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=midnight.weekday())


@get("/dashboard", name="dashboard")
async def dashboard(request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
    """Task figures and the five newest tasks (one query)."""
    overview = await TaskService(db_session).overview(request.user.id, week_start(clock.now()), 5)
    return page(
        request, "dashboard/index.html", {"stats": overview.stats, "recent": overview.recent}
    )
