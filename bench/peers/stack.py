"""The stack peer: the same pages written the straightforward FastAPI way.

A minimal FastAPI + SQLAlchemy async ORM + aiosqlite/asyncpg + Jinja2 app, as a team would
write it from the frameworks' tutorials, over the *same tables* of the same seeded database:

- its own session check: a dependency looks the cookie's SHA-256 up in ``sessions`` with the
  ORM, checks the idle and absolute timeouts, loads the user with ``session.get`` and, like
  the app, refreshes ``last_activity`` at most once a minute;
- the dashboard: the same four figures in one aggregate query, the five newest tasks, and the
  navigation bell (unread count and ten newest notifications), rendered by Jinja2;
- the task list with a search (count + page of 20), task create (CSRF check, insert, 303),
  the sign-in page (guest CSRF cookie) and sign-in (Argon2id verify at the same OWASP cost in
  FastAPI's thread pool, new session row, 303).

It has no access log, no security headers and no audit trail, so it does *less* than the app
per request; the ratio app/peer is therefore a conservative measure of what the app's hot
paths save. Column types come from ``shared.database.types`` so both apps read and write the
same stored forms (UUID text and ISO timestamps on SQLite).
"""

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import JSON, Boolean, ForeignKey, String, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.database.types import ISOTimestamp, UUIDv7, new_id

TEMPLATES = Path(__file__).parent / "templates"
IDLE = timedelta(minutes=30)
TOUCH = timedelta(minutes=1)
COOKIE = "session"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled_at: Mapped[datetime | None] = mapped_column(ISOTimestamp())
    last_login_at: Mapped[datetime | None] = mapped_column(ISOTimestamp())


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp())
    last_activity: Mapped[datetime] = mapped_column(ISOTimestamp())
    expires_at: Mapped[datetime] = mapped_column(ISOTimestamp())
    pending_2fa_until: Mapped[datetime | None] = mapped_column(ISOTimestamp())


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp())
    updated_at: Mapped[datetime] = mapped_column(ISOTimestamp())


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUIDv7(), ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(String(1000))
    link: Mapped[str | None] = mapped_column(String(500))
    read_at: Mapped[datetime | None] = mapped_column(ISOTimestamp())
    created_at: Mapped[datetime] = mapped_column(ISOTimestamp())


def now() -> datetime:
    return datetime.now(UTC)


def time_ago(value: datetime) -> str:
    seconds = int((now() - value).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def create_app() -> FastAPI:
    """Build the peer (``granian --factory bench.peers.stack:create_app``).

    Reads ``PEER_DATABASE_URL`` and ``PEER_SECRET_KEY`` from the environment.
    """
    engine = create_async_engine(os.environ["PEER_DATABASE_URL"])
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    secret = os.environ["PEER_SECRET_KEY"].encode()
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)  # OWASP baseline
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.filters["time_ago"] = time_ago

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def get_db() -> AsyncIterator[AsyncSession]:
        async with sessionmaker() as db:
            yield db

    Db = Annotated[AsyncSession, Depends(get_db)]

    def csrf_for(value: str) -> str:
        return hmac.new(secret, b"csrf:" + value.encode(), hashlib.sha256).hexdigest()

    async def current_session(request: Request, db: Db) -> tuple[User, Session]:
        token = request.cookies.get(COOKIE)
        if not token:
            raise HTTPException(status_code=303, headers={"location": "/login"})
        row = await db.scalar(
            select(Session).where(Session.token_hash == hashlib.sha256(token.encode()).hexdigest())
        )
        moment = now()
        if (
            row is None
            or row.pending_2fa_until is not None
            or moment > row.expires_at
            or moment > row.last_activity + IDLE
        ):
            raise HTTPException(status_code=303, headers={"location": "/login"})
        user = await db.get(User, row.user_id)
        if user is None or user.disabled_at is not None:
            raise HTTPException(status_code=303, headers={"location": "/login"})
        if moment - row.last_activity > TOUCH:  # keep the session alive, once a minute
            row.last_activity = moment
            await db.commit()
        return user, row

    Current = Annotated[tuple[User, Session], Depends(current_session)]

    async def form_fields(request: Request) -> dict[str, str]:
        """The url-encoded form body as a dict (the last value of a repeated field wins)."""
        return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))

    Fields = Annotated[dict[str, str], Depends(form_fields)]

    async def bell(db: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
        unread = await db.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        recent = await db.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at.desc())
            .limit(10)
        )
        return {"unread": unread, "recent": list(recent)}

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Any:
        return templates.TemplateResponse(request, name, context, status_code=status)

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/login")
    async def login_page(request: Request) -> Any:
        value = request.cookies.get("csrf") or secrets.token_urlsafe(32)
        response = render(request, "login.html", {"csrf": csrf_for(value), "user": None})
        if "csrf" not in request.cookies:
            response.set_cookie("csrf", value, httponly=True, samesite="lax")
        return response

    @app.post("/login")
    async def login(request: Request, db: Db, form: Fields) -> Any:
        email, password = form.get("email", ""), form.get("password", "")
        csrf_token = form.get("_csrf_token", "")
        cookie = request.cookies.get("csrf", "")
        if not cookie or not hmac.compare_digest(csrf_token, csrf_for(cookie)):
            raise HTTPException(status_code=403)
        user = await db.scalar(select(User).where(User.email == email.strip().lower()))
        try:
            ok = user is not None and await run_in_threadpool(
                hasher.verify, user.password_hash or "", password
            )
        except VerificationError:
            ok = False
        if not ok or user is None or user.disabled_at is not None:
            return render(request, "login.html", {"csrf": csrf_token, "user": None}, 422)
        token = secrets.token_urlsafe(32)
        moment = now()
        db.add(
            Session(
                user_id=user.id,
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                ip_address=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
                payload={"csrf": secrets.token_urlsafe(32)},
                created_at=moment,
                last_activity=moment,
                expires_at=moment + timedelta(hours=12),
            )
        )
        user.last_login_at = moment
        await db.commit()
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="lax")
        return response

    @app.get("/dashboard")
    async def dashboard(request: Request, db: Db, current: Current) -> Any:
        user, row = current
        week = now().replace(hour=0, minute=0, second=0, microsecond=0)
        week -= timedelta(days=week.weekday())
        total, pending, completed, created = (
            await db.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((Task.status == "pending", 1), else_=0)), 0),
                    func.coalesce(func.sum(case((Task.status == "completed", 1), else_=0)), 0),
                    func.coalesce(func.sum(case((Task.created_at >= week, 1), else_=0)), 0),
                ).where(Task.user_id == user.id)
            )
        ).one()
        recent = await db.scalars(
            select(Task)
            .where(Task.user_id == user.id)
            .order_by(Task.created_at.desc(), Task.id.desc())
            .limit(5)
        )
        context = {
            "user": user,
            "csrf": csrf_for(row.payload["csrf"]),
            "bell": await bell(db, user.id),
            "stats": {"total": total, "pending": pending, "completed": completed, "week": created},
            "recent": list(recent),
        }
        return render(request, "dashboard.html", context)

    @app.get("/tasks")
    async def tasks(request: Request, db: Db, current: Current, q: str = "", page: int = 1) -> Any:
        user, row = current
        query = select(Task).where(Task.user_id == user.id)
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Task.title.like(f"%{escaped}%", escape="\\"))
        total = await db.scalar(select(func.count()).select_from(query.subquery())) or 0
        items = await db.scalars(
            query.order_by(Task.created_at.desc(), Task.id.desc()).limit(20).offset((page - 1) * 20)
        )
        context = {
            "user": user,
            "csrf": csrf_for(row.payload["csrf"]),
            "bell": await bell(db, user.id),
            "tasks": list(items),
            "total": total,
            "q": q,
            "pages": max(1, (total + 19) // 20),
            "page": page,
        }
        return render(request, "tasks.html", context)

    @app.post("/tasks")
    async def create_task(db: Db, current: Current, form: Fields) -> Any:
        title, csrf_token = form.get("title", ""), form.get("_csrf_token", "")
        if not title.strip() or len(title) > 200:
            raise HTTPException(status_code=422)
        user, row = current
        if not hmac.compare_digest(csrf_token, csrf_for(row.payload["csrf"])):
            raise HTTPException(status_code=403)
        moment = now()
        db.add(Task(user_id=user.id, title=title.strip(), created_at=moment, updated_at=moment))
        await db.commit()
        return RedirectResponse("/tasks", status_code=303)

    return app
