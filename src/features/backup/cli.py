"""``litestar db backup`` and ``litestar db restore FILE`` (README "Backups", SECURITY.md R6)."""

from __future__ import annotations

from pathlib import Path

import click

from features.backup.service import BackupError, create_backup, list_backups, restore_backup
from shared.config import Settings, get_settings


def _settings() -> Settings:
    """The app's settings when run through ``litestar``; a ``Settings`` object passed as
    ``obj`` (tests); else the environment's."""
    ctx = click.get_current_context()
    given = ctx.find_object(Settings)
    if given is not None:
        return given
    env = ctx.find_root().obj
    app = getattr(env, "app", None)
    if app is not None:
        return app.state.settings
    return get_settings()


@click.command("backup")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="Archives to keep (default BACKUP_KEEP).",
)
def backup_command(keep: int | None) -> None:
    """Write a verified online backup of the database and asset files into BACKUP_DIR."""
    settings = _settings()
    try:
        result = create_backup(settings, keep=keep)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"backup written: {result.path} ({result.database_bytes} database bytes, "
        f"{result.asset_files} asset files, revision {result.revision}); integrity_check ok"
    )
    for path in result.removed:
        click.echo(f"rotated out: {path.name}")


@click.command("backups")
def list_command() -> None:
    """List the backup archives in BACKUP_DIR, newest first."""
    settings = _settings()
    archives = list_backups(settings.backup_dir)
    if not archives:
        click.echo(f"no backups in {settings.backup_dir}")
    for path in archives:
        click.echo(f"{path}  {path.stat().st_size} bytes")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even though an app is serving this database.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_command(archive: Path, force: bool, yes: bool) -> None:
    """Replace the database and asset files with a backup ARCHIVE (the app must be stopped).

    The current files are kept beside the originals as *.pre-restore-<time>. Run
    `alembic upgrade head` afterwards if the backup is older than the code.
    """
    settings = _settings()
    if not yes:
        click.confirm(
            f"Replace {settings.database_url} and {settings.storage_dir} with {archive}?",
            abort=True,
        )
    try:
        result = restore_backup(settings, archive, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"restored {archive.name} (made {result.manifest.get('created_at')}, revision "
        f"{result.manifest.get('revision')}, {result.asset_files} asset files); "
        "integrity_check ok"
    )
    for path in result.previous:
        click.echo(f"previous state kept at: {path}")
    click.echo("next: `alembic upgrade head`, then start the app")


db_commands = [backup_command, list_command, restore_command]
