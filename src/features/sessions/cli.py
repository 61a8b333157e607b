"""``litestar sessions prune``: delete expired session rows."""

from __future__ import annotations

import asyncio

import click

from features.sessions.service import prune_expired
from shared.config import get_settings
from shared.database import Database


@click.group("sessions", help="Browser sessions.")
def sessions_group() -> None:
    """``litestar sessions …``."""


@sessions_group.command("prune")
def prune_command() -> None:
    """Delete sessions past their idle or absolute timeout and print how many."""
    settings = get_settings()

    async def main() -> int:
        db = Database(settings.database_url)
        try:
            return await prune_expired(db, settings)
        finally:
            await db.dispose()

    click.echo(f"Deleted {asyncio.run(main())} expired session(s).")


cli_commands = [sessions_group]
