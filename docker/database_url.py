"""Choose the container's database and say which (run by docker/entrypoint.sh).

1. ``DATABASE_URL`` set and not empty: used as it is.
2. Otherwise PostgreSQL when ``POSTGRES_HOST`` is set and its name resolves: compose sets it to
   ``postgres``, the service of the ``postgres`` profile, whose name resolves only while that
   service runs (``docker compose --profile postgres up``). The URL is
   ``postgresql+asyncpg://POSTGRES_USER:POSTGRES_PASSWORD@POSTGRES_HOST:POSTGRES_PORT/POSTGRES_DB``;
   an empty ``POSTGRES_PASSWORD`` is refused.
3. Otherwise SQLite at ``$DB_DIR/app.sqlite``, unless ``$DB_DIR/postgres`` holds PostgreSQL's
   data: then the profile was used before but its server is not running now, and starting on
   an empty SQLite file instead would look like lost data, so it is refused.

Prints the URL on stdout and one line naming the database on stderr (never the password).
Exits 1 with the reason when it refuses.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from sqlalchemy.engine import URL, make_url


def _resolves(host: str, port: int) -> bool:
    try:
        return bool(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return False


def choose(env: dict[str, str]) -> tuple[str, str]:
    """``(DATABASE_URL, what to log)`` for the environment ``env``; ``SystemExit`` to refuse."""
    if env.get("DATABASE_URL"):
        url = env["DATABASE_URL"]
        shown = make_url(url).render_as_string(hide_password=True)
        return url, f"database: {shown} (DATABASE_URL)"
    db_dir = Path(env.get("DB_DIR") or "db").resolve()
    host = env.get("POSTGRES_HOST", "")
    port = int(env.get("POSTGRES_PORT") or 5432)
    if host and _resolves(host, port):
        if not env.get("POSTGRES_PASSWORD"):
            raise SystemExit(
                f"PostgreSQL ({host}) is running but POSTGRES_PASSWORD is empty: set it in .env"
            )
        url = URL.create(
            "postgresql+asyncpg",
            username=env.get("POSTGRES_USER") or "slicestar",
            password=env["POSTGRES_PASSWORD"],
            host=host,
            port=port,
            database=env.get("POSTGRES_DB") or "slicestar",
        )
        shown = url.render_as_string(hide_password=True)
        line = f"database: PostgreSQL {shown} (the postgres profile; DATABASE_URL is not set)"
        if (sqlite := db_dir / "app.sqlite").exists():
            line += f"; {sqlite} is not used"
        return url.render_as_string(hide_password=False), line
    if (db_dir / "postgres").is_dir():
        raise SystemExit(
            f"{db_dir / 'postgres'} holds PostgreSQL data, but the PostgreSQL server"
            f"{f' ({host})' if host else ''} is not running: start with "
            "`docker compose --profile postgres up`, or set DATABASE_URL to choose a database"
        )
    path = db_dir / "app.sqlite"
    return f"sqlite+aiosqlite:///{path}", f"database: SQLite {path} (DATABASE_URL is not set)"


def main() -> None:
    url, line = choose(dict(os.environ))
    print(line, file=sys.stderr)
    print(url)


if __name__ == "__main__":
    main()
