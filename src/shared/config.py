"""Typed settings, read once from the environment (and an optional ``.env`` file).

See DESIGN.md §6. :func:`get_settings` returns the cached :class:`Settings`; tests build their
own ``Settings(...)`` and pass it to ``create_app``.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT_DIR = Path(__file__).resolve().parents[2]
DB_DIR = ROOT_DIR / "db"
DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{(DB_DIR / 'app.sqlite').as_posix()}"
_INSECURE_KEYS = {"", "change-me", "changeme", "secret"}


class Settings(BaseSettings):
    """Application settings. Every field maps to the upper-case environment variable of its name.

    Units are in the field names (``_minutes``, ``_hours``, ``_days``, ``_kib``).
    Raises ``ValueError`` (a pydantic ``ValidationError``) when ``APP_ENV=production`` and
    ``SECRET_KEY`` is missing or weak, and for invalid values (e.g. ``AUDIT_RETENTION_DAYS`` < 1).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "production", "test"] = "development"
    app_name: str = "Slicestar"
    app_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    # Keys for secrets at rest (TOTP secrets, S25): comma-separated, newest first; empty =
    # derived from SECRET_KEY. See shared.security.encryption.
    encryption_key: str = ""
    database_url: str = DEFAULT_DATABASE_URL
    # Mail (README "Mail"): smtp://, smtp+starttls://, smtps:// or file:///folder; empty = the
    # outbox folder in development and test, refused in production (shared.mail.transport).
    mail_url: str = ""
    mail_from: str = "Slicestar <no-reply@localhost>"
    mail_outbox_dir: Path = DB_DIR / "mail"
    mail_timeout_seconds: float = Field(default=10.0, gt=0)
    mail_retry_attempts: int = Field(default=4, ge=1)
    mail_retry_base_seconds: float = Field(default=2.0, ge=0)
    storage_dir: Path = DB_DIR / "assets"
    redis_url: str = ""
    # Proxies whose X-Forwarded-For is believed: a JSON list or comma-separated IPs/CIDRs.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Operations (README "Backups", "Operations"; SECURITY.md R6, R10).
    backup_dir: Path = DB_DIR / "backups"
    backup_keep: int = 7
    backup_interval_minutes: int = 0  # 0: no schedule inside the app
    database_max_size_mb: int = 0  # SQLite only: PRAGMA max_page_count cap; 0: no cap
    # PostgreSQL only: connections each worker process keeps (a fixed pool, no overflow).
    database_pool_size: int = Field(default=10, ge=1)
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: json in production
    log_level: str = "INFO"

    # Sessions (SECURITY.md S14, S15).
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    remember_me_days: int = 30
    session_touch_seconds: int = 60

    # Notifications: live poll interval (one query per worker per interval while tabs listen)
    # and how long ``litestar notifications prune`` keeps them by default.
    notification_poll_seconds: float = 1.0
    notification_retention_days: int = 90
    # Audit trail (SECURITY.md S52): `litestar audit prune` deletes older events; at least 1.
    audit_retention_days: int = 365

    # Argon2id (SECURITY.md S1: OWASP baseline m=19 MiB, t=2, p=1; raise, never lower).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # Hashes one worker process computes at once (each holds argon2_memory_kib of RAM);
    # 0 = the CPU count divided by WEB_CONCURRENCY, at least 1.
    argon2_threads: int = Field(default=0, ge=0)
    # Worker processes serving the app (the entrypoint's `granian --workers`); 1 otherwise.
    web_concurrency: int = Field(default=1, ge=1)

    # Uploads (SECURITY.md S41, S44): per-file cap, per-user quota (bytes), image pixel cap.
    asset_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    asset_quota_bytes: int = Field(default=100 * 1024 * 1024, ge=0)
    asset_max_pixels: int = Field(default=40_000_000, gt=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        for entry in value if isinstance(value, list) else ():
            ipaddress.ip_network(str(entry).strip(), strict=False)  # ValueError: not an IP/CIDR
        return value

    @field_validator("audit_retention_days")
    @classmethod
    def _positive_retention(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"must be a whole number of days, at least 1 (got {value}): "
                "`litestar audit prune` deletes the audit events older than that"
            )
        return value

    @model_validator(mode="after")
    def _secret_key_policy(self) -> Settings:
        if self.app_env == "production":
            if self.secret_key in _INSECURE_KEYS or len(self.secret_key) < 32:
                raise ValueError(
                    "SECRET_KEY must be set to at least 32 random characters in production"
                )
        elif not self.secret_key:
            self.secret_key = _development_secret_key()
        if any(len(k.strip()) < 32 for k in self.encryption_key.split(",") if k.strip()):
            raise ValueError("each ENCRYPTION_KEY must have at least 32 random characters")
        return self

    @property
    def is_sqlite(self) -> bool:
        """True when ``database_url`` points at SQLite."""
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        """True when the app is served over https (decides Secure cookies, ``__Host-`` and HSTS)."""
        return self.app_url.startswith("https://")


def _development_secret_key() -> str:
    """Create (once) and return a random key kept in ``db/.secret_key`` for development."""
    path = DB_DIR / ".secret_key"
    if path.exists():
        return path.read_text().strip()
    DB_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use.

    Raises ``SystemExit`` with one line per invalid variable (no traceback) when the
    environment is invalid, so ``make run``, the server and every command stop with a message
    an operator can act on.
    """
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        raise SystemExit("Invalid configuration:\n" + "\n".join(lines)) from None
