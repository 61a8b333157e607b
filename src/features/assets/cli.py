"""``litestar assets prune``: reconcile stored files and ``assets`` rows, and report."""

from __future__ import annotations

import asyncio

import click
from litestar import Litestar
from litestar.cli._utils import LitestarGroup

from features.assets.service import PruneReport, prune
from shared.database import Database


@click.group(name="assets", cls=LitestarGroup, help="Uploaded files: storage maintenance.")
def assets_group() -> None:
    """Commands about uploaded files."""


@assets_group.command(name="prune")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option(
    "--grace-minutes",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="Leave files younger than this alone (uploads in flight).",
)
def prune_command(app: Litestar, dry_run: bool, grace_minutes: int) -> None:
    """Delete files no row refers to and rows whose file is gone; clean stale work files."""
    settings = app.state.settings

    async def run() -> PruneReport:
        db = Database(settings.database_url)
        try:
            return await prune(db, settings, dry_run=dry_run, grace_seconds=grace_minutes * 60)
        finally:
            await db.dispose()

    report = asyncio.run(run())
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {len(report.orphan_files)} file(s) without a database row.")
    for key in report.orphan_files:
        click.echo(f"  file  {key}")
    click.echo(f"{verb} {len(report.missing_rows)} row(s) whose file is missing.")
    for key in report.missing_rows:
        click.echo(f"  row   {key}")
    click.echo(f"{verb} {report.stale_incoming} stale upload work file(s).")


cli_commands = [assets_group]
