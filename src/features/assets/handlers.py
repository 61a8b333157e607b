"""Asset pages and file serving (HTTP only; SECURITY.md S38, S41–S46).

Status codes for refused uploads: 413 when a file passes the per-file cap (or the request
passes the route's body limit), 415 when the type is not allowed (decided from the bytes),
422 when the storage quota would be exceeded, the file is empty, an image has too many pixels
or cannot be decoded. The page (or, for the upload script, JSON) says why.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.assets.models import Asset
from features.assets.schemas import (
    MAX_FILES_PER_REQUEST,
    content_disposition,
    display_name,
    download_name,
    parse_id,
    parse_page,
)
from features.assets.service import (
    AssetNotFound,
    AssetService,
    NotAnImage,
    Rejected,
    format_bytes,
    spool_dir,
    storage_for,
)
from features.assets.uploads import IncomingFile, receive_files
from shared.config import Settings
from shared.database.repository import PageOutOfRange
from shared.events import emit_security_event
from shared.web.errors import http_exception_handler
from shared.web.render import page, redirect

NOT_FOUND = "That file does not exist."
UPLOAD_REQUEST_MIN_BYTES = 64 * 1024 * 1024
ACCEPT = "image/jpeg,image/png,image/webp,image/gif,application/pdf,text/plain,.txt"
# Served files: never sniffed, never scripted, never framed (S46).
FILE_CSP = "sandbox; default-src 'none'; img-src 'self'; frame-ancestors 'none'"


def upload_request_max_bytes(settings: Settings) -> int:
    """The upload route's request body limit in bytes: ``max(64 MiB, 2 × ASSET_MAX_BYTES)``.

    The upload script sends one file per request; the form without JavaScript sends every
    chosen file in one request, so a request may carry more than one file's cap, but never
    more than this (413). Raising ``ASSET_MAX_BYTES`` raises it with the cap (SECURITY.md S41).
    """
    return max(UPLOAD_REQUEST_MIN_BYTES, 2 * settings.asset_max_bytes)


def set_upload_request_limit(app: Litestar) -> None:
    """Give ``app``'s upload route the body limit of its settings (run once, before serving).

    Route decorators are evaluated at import, before any settings exist; every app holds its
    own copy of each route handler, so this sets the limit of that copy only.
    """
    handler = app.get_handler_index_by_name("assets.upload")["handler"]
    handler.request_max_body_size = upload_request_max_bytes(app.state.settings)


def upload_too_large(request: Request, exc: RequestEntityTooLarge) -> Response[Any]:
    """413 for an upload whose body passes the route's limit (SECURITY.md S41, S52).

    Litestar raises it while reading the body: for the plain form inside the CSRF middleware,
    before the handler runs; for the upload script inside the handler. Either way the answer
    names both limits (e.g. "64 MB in all, and each file at most 10 MB"; an error page, or
    JSON for the script) and an ``upload_rejected`` event is recorded.
    """
    settings = request.app.state.settings
    limit = request.route_handler.resolve_request_max_body_size() or 0
    message = (
        f"The upload is too large: one upload may carry at most {format_bytes(limit)} in all, "
        f"and each file at most {format_bytes(settings.asset_max_bytes)}. "
        "Choose fewer or smaller files."
    )
    user = request.scope.get("user")
    emit_security_event(
        request,
        "upload_rejected",
        user_id=getattr(user, "id", None),
        outcome="failure",
        reason="too_large",
        status=413,
    )
    if _wants_json(request):
        return Response(
            {"assets": [], "errors": [{"name": "", "message": message}]}, status_code=413
        )
    return http_exception_handler(request, HTTPException(status_code=413, detail=message))


def _asset_id(raw: str) -> uuid.UUID:
    asset_id = parse_id(raw)
    if asset_id is None:
        raise NotFoundException(NOT_FOUND)
    return asset_id


def _service(request: Request, db_session: AsyncSession) -> AssetService:
    return AssetService(db_session, request.app.state.settings)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _asset_json(asset: Asset) -> dict[str, Any]:
    return {
        "id": str(asset.id),
        "name": asset.original_name,
        "mime_type": asset.mime_type,
        "size": asset.size,
        "url": asset.url,
    }


async def _serve(
    request: Request,
    asset: Asset,
    *,
    thumbnail: bool = False,
    attachment: bool = False,
    cache: str = "private, no-cache",
) -> Response[Any]:
    """Stream one stored file with the S46 headers; 304 when the browser's copy is current."""
    key = asset.thumbnail_path if thumbnail else asset.path
    if key is None:
        raise NotFoundException(NOT_FOUND)
    extension = asset.filename.rsplit(".", 1)[-1]
    inline = asset.is_image and not attachment
    etag = f'"{asset.id.hex}-{"t" if thumbnail else "f"}"'
    headers = {
        "ETag": etag,
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
        "Cross-Origin-Resource-Policy": "same-origin",
        "Content-Disposition": content_disposition(
            "inline" if inline else "attachment", download_name(asset.original_name, extension)
        ),
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(content=b"", status_code=304, headers=headers)
    try:
        chunks = await storage_for(request.app.state.settings).open(key)
    except FileNotFoundError:
        raise NotFoundException(NOT_FOUND) from None
    media_type = "image/webp" if thumbnail else asset.mime_type
    if not thumbnail:
        headers["Content-Length"] = str(asset.size)
    return Stream(chunks, media_type=media_type, headers=headers)


class AssetController(Controller):
    """``/assets``: the owner's files. Every route needs a signed-in user and an owned asset."""

    path = "/assets"

    async def _index(
        self,
        request: Request,
        service: AssetService,
        page_number: int = 1,
        *,
        upload_errors: list[tuple[str, str]] | None = None,
        uploaded: list[Asset] | None = None,
        status_code: int = 200,
    ) -> Template:
        settings = request.app.state.settings
        try:
            assets = await service.list(request.user.id, page_number)
        except PageOutOfRange:
            raise NotFoundException("That page does not exist.") from None
        used = await service.used_bytes(request.user.id)
        quota = settings.asset_quota_bytes
        context = {
            "assets": assets,
            "used": used,
            "quota": quota,
            "used_text": format_bytes(used),
            "quota_text": format_bytes(quota),
            "used_percent": min(100, round(used * 100 / quota)) if quota else 100,
            "max_bytes": settings.asset_max_bytes,
            "max_text": format_bytes(settings.asset_max_bytes),
            "max_files": MAX_FILES_PER_REQUEST,
            "accept": ACCEPT,
            "upload_errors": upload_errors or [],
            "uploaded": uploaded or [],
            "format_bytes": format_bytes,
            "avatar_id": request.user.avatar_id,
            "page_url": lambda page: "/assets" + (f"?page={page}" if page != 1 else ""),
        }
        return page(request, "assets/index.html", context, status_code=status_code)

    @get("/", name="assets.index")
    async def index(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        page: FromQuery[str | None] = None,
    ) -> Template:
        """The grid of the user's files, usage against the quota, and the upload form."""
        number = parse_page(page)
        if number is None:
            raise NotFoundException("That page does not exist.")
        return await self._index(request, _service(request, db_session), number)

    # The body limit is set per app from ASSET_MAX_BYTES: see set_upload_request_limit.
    @post(
        "/",
        name="assets.upload",
        request_max_body_size=UPLOAD_REQUEST_MIN_BYTES,
        exception_handlers={RequestEntityTooLarge: upload_too_large},
    )
    async def upload(
        self, request: Request, db_session: NamedDependency[AsyncSession]
    ) -> Response[Any] | Template | Redirect:
        """Receive one or more files (streamed, capped), check and store each (S41–S45).

        Answers 303 (page) or 201 (JSON) when all are stored; otherwise the status of the
        first refusal (413/415/422) with a reason per file.
        """
        settings = request.app.state.settings
        service = _service(request, db_session)
        user_id = request.user.id
        stored: list[Asset] = []
        refused: list[tuple[str, Rejected]] = []
        files: list[IncomingFile] = []
        try:
            if await service.quota_left(user_id) <= 0:
                refused.append(
                    ("", Rejected("quota", 422, "Your storage is full. Delete some files first."))
                )
            else:
                try:
                    files = await receive_files(
                        request,
                        Path(spool_dir(settings)),
                        max_bytes=settings.asset_max_bytes,
                        max_files=MAX_FILES_PER_REQUEST,
                    )
                except RequestEntityTooLarge:
                    raise  # the body passed the route's limit: see upload_too_large
                except HTTPException as exc:  # malformed, too many files
                    emit_security_event(
                        request,
                        "upload_rejected",
                        user_id=user_id,
                        outcome="failure",
                        reason="too_large" if exc.status_code == 413 else "malformed",
                        status=exc.status_code,
                    )
                    raise
                if not files:
                    refused.append(("", Rejected("no_file", 422, "Choose a file to upload.")))
            for incoming in files:
                try:
                    stored.append(await service.store(user_id, incoming))
                except Rejected as rejection:
                    refused.append((incoming.name, rejection))
        finally:
            for incoming in files:
                await incoming.discard()

        for _name, rejection in refused:
            emit_security_event(
                request,
                "upload_rejected",
                user_id=user_id,
                outcome="failure",
                reason=rejection.reason,
                status=rejection.status,
            )
        errors = [(display_name(name) if name else "", r.message) for name, r in refused]
        status = refused[0][1].status if refused else 201
        if _wants_json(request):
            body = {
                "assets": [_asset_json(a) for a in stored],
                "errors": [{"name": n, "message": m} for n, m in errors],
            }
            return Response(body, status_code=status)
        if refused:
            return await self._index(
                request, service, upload_errors=errors, uploaded=stored, status_code=status
            )
        message = (
            f"Uploaded {stored[0].original_name}."
            if len(stored) == 1
            else f"Uploaded {len(stored)} files."
        )
        return redirect(request, "/assets", flash=("success", message))

    @get("/{asset_id:str}/file", name="assets.file")
    async def file(
        self, request: Request, db_session: NamedDependency[AsyncSession], asset_id: FromPath[str]
    ) -> Response[Any]:
        """The stored file: images (re-encoded WebP) inline, anything else as a download."""
        asset = await self._owned(request, db_session, asset_id)
        return await _serve(request, asset)

    @get("/{asset_id:str}/thumb", name="assets.thumb")
    async def thumb(
        self, request: Request, db_session: NamedDependency[AsyncSession], asset_id: FromPath[str]
    ) -> Response[Any]:
        """The 320 px thumbnail of an owned image (404 for other files)."""
        asset = await self._owned(request, db_session, asset_id)
        return await _serve(request, asset, thumbnail=True)

    @get("/{asset_id:str}/download", name="assets.download")
    async def download(
        self, request: Request, db_session: NamedDependency[AsyncSession], asset_id: FromPath[str]
    ) -> Response[Any]:
        """The stored file as an attachment under the original name."""
        asset = await self._owned(request, db_session, asset_id)
        return await _serve(request, asset, attachment=True)

    @get("/{asset_id:str}/delete", name="assets.confirm_delete")
    async def confirm_delete(
        self, request: Request, db_session: NamedDependency[AsyncSession], asset_id: FromPath[str]
    ) -> Template:
        """Ask before deleting (works without JavaScript)."""
        asset = await self._owned(request, db_session, asset_id)
        return page(
            request,
            "assets/delete.html",
            {"asset": asset, "size_text": format_bytes(asset.size)},
        )

    @post("/{asset_id:str}/delete", name="assets.delete")
    async def delete(
        self, request: Request, db_session: NamedDependency[AsyncSession], asset_id: FromPath[str]
    ) -> Redirect:
        """Delete an owned file (row first, then its files); 404 for anyone else's."""
        try:
            asset = await _service(request, db_session).delete(request.user.id, _asset_id(asset_id))
        except AssetNotFound:
            raise NotFoundException(NOT_FOUND) from None
        return redirect(request, "/assets", flash=("success", f"Deleted {asset.original_name}."))

    @post("/{asset_id:str}/avatar", name="assets.set_avatar")
    async def set_avatar(
        self, request: Request, db_session: NamedDependency[AsyncSession], asset_id: FromPath[str]
    ) -> Template | Redirect:
        """Use an owned image as avatar."""
        service = _service(request, db_session)
        try:
            await service.set_avatar(request.user.id, _asset_id(asset_id))
        except AssetNotFound:
            raise NotFoundException(NOT_FOUND) from None
        except NotAnImage:
            errors = [("", "Only an image can be your avatar.")]
            return await self._index(request, service, upload_errors=errors, status_code=422)
        return redirect(request, "/assets", flash=("success", "Your avatar is set."))

    @post("/avatar/remove", name="assets.remove_avatar")
    async def remove_avatar(
        self, request: Request, db_session: NamedDependency[AsyncSession]
    ) -> Redirect:
        """Stop using an avatar (the image itself stays)."""
        await _service(request, db_session).clear_avatar(request.user.id)
        return redirect(request, "/assets", flash=("success", "Your avatar is removed."))

    async def _owned(self, request: Request, db_session: AsyncSession, raw_id: str) -> Asset:
        try:
            return await _service(request, db_session).get(request.user.id, _asset_id(raw_id))
        except AssetNotFound:
            raise NotFoundException(NOT_FOUND) from None


@get("/avatars/{user_id:str}", name="assets.avatar")
async def avatar(
    request: Request, db_session: NamedDependency[AsyncSession], user_id: FromPath[str]
) -> Response[Any]:
    """Any user's avatar thumbnail, for any signed-in user; 404 when none is set.

    The layout links ``/avatars/<id>?v=<asset id>``, so a new avatar is a new URL and the
    browser may keep each one for an hour.
    """
    owner = parse_id(user_id)
    if owner is None:
        raise NotFoundException("No avatar.")
    try:
        asset = await _service(request, db_session).avatar_of(owner)
    except AssetNotFound:
        raise NotFoundException("No avatar.") from None
    return await _serve(request, asset, thumbnail=True, cache="private, max-age=3600")
