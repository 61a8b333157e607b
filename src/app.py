"""Composition root: ``create_app()`` gathers every feature's routes, templates and listeners.

Run with ``make run``: ``FORWARDED_ALLOW_IPS= litestar --app-dir src run`` (the ``litestar`` CLI
finds the ``create_app`` factory; the empty variable stops uvicorn from believing
``X-Forwarded-For``, which only ``TRUSTED_PROXIES`` decides, SECURITY.md S9).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.plugins import CLIPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

import features.admin as admin_feature
import features.assets as assets_feature
import features.audit as audit_feature
import features.backup as backup_feature
import features.core.auth as auth_feature
import features.core.auth.account as account_feature
import features.core.auth.two_factor as two_factor_feature
import features.dashboard as dashboard_feature
import features.notifications as notifications_feature
import features.sessions as sessions_feature
import features.tasks as tasks_feature
import features.users as users_feature
from features.sessions.middleware import SessionMiddleware
from shared.config import Settings, get_settings
from shared.database import Database
from shared.database.dependencies import provide_db_session
from shared.database.serving import hold_serving_lock
from shared.logs import (
    flush_logs,
    logging_config,
    redact_server_access_log,
    skip_unused_record_fields,
    uses_json,
)
from shared.mail import Mailer
from shared.mail.dev_page import dev_mail
from shared.security.passwords import Passwords, default_threads
from shared.web import templating
from shared.web.access_log import AccessLog
from shared.web.csrf import CSRFMiddleware
from shared.web.errors import exception_handlers
from shared.web.first_visit import FirstVisitPages
from shared.web.guards import requires_user
from shared.web.head import HeadAsGet
from shared.web.headers import security_headers
from shared.web.health import healthz, readyz
from shared.web.render import CONTEXT_PROVIDERS, provide_template_context

if TYPE_CHECKING:
    from click import Group

FEATURES: tuple[ModuleType, ...] = (
    auth_feature,
    account_feature,
    two_factor_feature,
    users_feature,
    sessions_feature,
    tasks_feature,
    dashboard_feature,
    assets_feature,
    backup_feature,
    notifications_feature,
    admin_feature,
    audit_feature,
)
SHARED_WEB = Path(__file__).parent / "shared" / "web"


class FeatureCLI(CLIPluginProtocol):
    """Adds each feature's commands to the ``litestar`` CLI (DESIGN.md §7).

    A feature with commands names its command module in ``cli_module`` (e.g.
    ``"features.admin.cli"``); that module exports ``cli_commands`` (top-level commands or
    groups, e.g. ``litestar users``) and/or ``db_commands`` (subcommands of the shared
    ``litestar db`` group). The modules are imported here, when the CLI starts, never by a
    server worker: click, rich and the CLI's helpers cost a worker about 4 MiB it never uses.
    """

    def on_cli_init(self, cli: Group) -> None:
        """Add every feature's commands to ``cli`` and its ``db`` subcommands to one group."""
        from click import Group

        db_group = Group("db", help="Database commands: seed, backup, restore, prune …")
        for feature in FEATURES:
            name = getattr(feature, "cli_module", None)
            if name is None:
                continue
            commands = importlib.import_module(name)
            for command in getattr(commands, "cli_commands", ()):
                cli.add_command(command)
            for command in getattr(commands, "db_commands", ()):
                db_group.add_command(command)
        if db_group.commands:
            cli.add_command(db_group)


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the Litestar application for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.db = Database(
            settings.database_url,
            max_size_mb=settings.database_max_size_mb,
            pool_size=settings.database_pool_size,
        )
        serving = await hold_serving_lock(settings.database_url)  # see `litestar db restore`
        try:
            # Refuses to start without MAIL_URL in production (shared.mail.transport).
            await app.state.mail.start()
            try:
                yield
            finally:
                await app.state.mail.stop()  # pending mail gets a bounded time to go out
        finally:
            await app.state.db.dispose()
            serving.release()
            flush_logs()  # a worker process may end without running exit handlers

    template_dirs = [SHARED_WEB / "templates"] + [f.template_dir for f in FEATURES]
    template_dirs = [d for d in template_dirs if d.exists()]
    template_config = TemplateConfig(
        directory=template_dirs,
        engine=JinjaTemplateEngine,
        engine_callback=lambda engine: templating.configure(
            engine.engine, reload=settings.app_env == "development"
        ),
    )
    static = create_static_files_router(
        path="/static",
        directories=[SHARED_WEB / "static"],
        opt={"public": True},
        include_in_schema=False,
        cache_control=None,
    )
    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            dev_mail,
            static,
            *(r for f in FEATURES for r in f.routes),
        ],
        listeners=[listener for f in FEATURES for listener in f.listeners],
        # Features' lifespans (``lifespans``) run inside the app's: the database exists first.
        lifespan=[lifespan, *(m for f in FEATURES for m in getattr(f, "lifespans", ()))],
        state=State(_initial_state(settings, template_dirs)),
        dependencies={"db_session": Provide(provide_db_session)},
        middleware=[DefineMiddleware(SessionMiddleware), DefineMiddleware(CSRFMiddleware)],
        guards=[requires_user],
        before_send=[security_headers],
        after_request=provide_template_context,
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        template_config=template_config,
        plugins=[FeatureCLI()],
        openapi_config=None,
        response_cache_config=ResponseCacheConfig(),
        logging_config=logging_config(settings.log_format, settings.app_env, settings.log_level),
        debug=False,
    )
    for feature in FEATURES:  # ``setup_hooks``: settings-dependent set-up of the built app
        for hook in getattr(feature, "setup_hooks", ()):
            hook(app)
    redact_server_access_log()  # uvicorn's own access log must not print mailed tokens (S37)
    if uses_json(settings.log_format, settings.app_env):
        skip_unused_record_fields()  # JSON lines never show the caller, thread or process
    # Outermost: the access log (404s and errors too); inside it, first visits to the pages
    # features list answered from snapshots (not while templates reload), and HEAD as GET.
    handler = HeadAsGet(app.asgi_handler)
    if settings.app_env != "development":
        pages = [path for f in FEATURES for path in getattr(f, "first_visit_pages", ())]
        handler = FirstVisitPages(handler, pages)
    app.asgi_handler = AccessLog(handler)
    return app


def _initial_state(settings: Settings, template_dirs: list[Path]) -> dict[str, object]:
    return {
        "settings": settings,
        "mail": Mailer(settings, template_dirs),
        "passwords": Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            threads=settings.argon2_threads or default_threads(settings.web_concurrency),
        ),
        CONTEXT_PROVIDERS: [p for f in FEATURES for p in getattr(f, "template_context", ())],
    }


logging.getLogger("aiosqlite").setLevel(logging.WARNING)
