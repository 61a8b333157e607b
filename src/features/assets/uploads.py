"""Receiving uploaded files with a hard per-file cap (SECURITY.md S41).

Two ways a multipart body reaches the upload handler:

- **With JavaScript** the page sends one file per request with the CSRF token in the
  ``X-CSRF-Token`` header. The CSRF middleware then never reads the body, and
  :func:`receive_files` parses it as it streams in: each file part is written to a work file
  in ``<STORAGE_DIR>/.incoming/``, counting bytes; once a part passes the cap its work file is
  deleted and the rest of that part is discarded, so an oversized file never exists on disk
  beyond the cap and never in storage.
- **Without JavaScript** the form carries ``_csrf_token`` as a field, so the CSRF middleware
  must parse the multipart body before the handler runs. Litestar's parser streams file
  parts into anonymous temporary files (unlinked, so nothing is left behind on any error),
  and the route's ``request_max_body_size`` bounds the whole body while it is read (413).
  The handler then copies each parsed part through the same cap.

Either way the caller gets :class:`IncomingFile` work files and must :meth:`~IncomingFile.discard`
them (the service moves accepted ones into storage).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from shared.web.csrf import HEADER as CSRF_HEADER

CHUNK_BYTES = 64 * 1024
INCOMING_DIR = ".incoming"


class MalformedUpload(ClientException):
    """The multipart body could not be parsed (400)."""


class TooManyFiles(ClientException):
    """More file parts than one request may carry (413)."""

    status_code = 413


@dataclass(slots=True)
class IncomingFile:
    """One received file part.

    ``name`` is the client's file name exactly as sent (untrusted, display only after
    sanitising). ``path`` is the work file (``None`` once discarded or when the part was too
    large). ``size`` counts bytes received, up to the cap plus one.
    """

    name: str
    path: Path | None
    size: int = 0
    too_large: bool = False

    async def discard(self) -> None:
        """Delete the work file if it still exists."""
        if self.path is not None:
            await anyio.Path(self.path).unlink(missing_ok=True)
            self.path = None


class _Sink:
    """Writes one part to a work file until the cap is passed."""

    def __init__(self, incoming: IncomingFile, handle: Any, max_bytes: int) -> None:
        self.incoming = incoming
        self.handle = handle
        self.max_bytes = max_bytes

    async def write(self, data: bytes | bytearray) -> None:
        if self.incoming.too_large:
            return
        self.incoming.size += len(data)
        if self.incoming.size > self.max_bytes:
            self.incoming.too_large = True
            await self.close()
            await self.incoming.discard()
            return
        await self.handle.write(bytes(data))

    async def close(self) -> None:
        if self.handle is not None:
            await self.handle.aclose()
            self.handle = None


async def _open_sink(spool: Path, name: str, max_bytes: int) -> _Sink:
    await anyio.Path(spool).mkdir(parents=True, exist_ok=True)
    path = spool / f"{secrets.token_hex(16)}.part"
    handle = await anyio.open_file(path, "xb")
    return _Sink(IncomingFile(name=name, path=path), handle, max_bytes)


async def receive_files(
    request: Request, spool: Path, *, max_bytes: int, max_files: int
) -> list[IncomingFile]:
    """Receive every file part of the request into work files under ``spool``.

    Parts without a file name are ignored, as are empty parts with an empty name (a form
    submitted without choosing a file). Raises :class:`MalformedUpload` (400) or
    :class:`TooManyFiles` (413); Litestar raises 413 when the body passes the route's limit.
    On any error every work file already written is deleted.
    """
    content_type, options = request.content_type
    if content_type != RequestEncodingType.MULTI_PART:
        return []
    files: list[IncomingFile] = []
    try:
        if request.headers.get(CSRF_HEADER) is not None:
            await _receive_streamed(request, options, spool, max_bytes, max_files, files)
        else:
            await _receive_parsed(request, spool, max_bytes, max_files, files)
    except BaseException:
        for incoming in files:
            await incoming.discard()
        raise
    kept = []
    for incoming in files:
        if incoming.size == 0 and not incoming.name:
            await incoming.discard()
        else:
            kept.append(incoming)
    return kept


async def _receive_streamed(
    request: Request,
    options: dict[str, str],
    spool: Path,
    max_bytes: int,
    max_files: int,
    files: list[IncomingFile],
) -> None:
    boundary = options.get("boundary")
    if not boundary:
        raise MalformedUpload("The upload is malformed (no multipart boundary).")
    sink: _Sink | None = None
    try:
        with PushMultipartParser(
            boundary.encode("latin-1"), max_segment_count=max_files + 16, strict=True
        ) as parser:
            async for chunk in request.stream():
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        if event.filename is None:
                            continue  # a plain field (the CSRF token): not needed here
                        if len(files) >= max_files:
                            raise TooManyFiles(f"Upload at most {max_files} files at once.")
                        sink = await _open_sink(spool, event.filename, max_bytes)
                        files.append(sink.incoming)
                    elif event:
                        if sink is not None:
                            await sink.write(event)
                    elif sink is not None:
                        await sink.close()
                        sink = None
                if parser.closed:
                    break
    except (ParserError, ParserLimitReached) as exc:
        raise MalformedUpload("The upload is malformed.") from exc
    finally:
        if sink is not None:
            await sink.close()


async def _receive_parsed(
    request: Request, spool: Path, max_bytes: int, max_files: int, files: list[IncomingFile]
) -> None:
    form = await request.form()  # already parsed by the CSRF middleware (cached)
    uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if len(uploads) > max_files:
        raise TooManyFiles(f"Upload at most {max_files} files at once.")
    for upload in uploads:
        sink = await _open_sink(spool, upload.filename or "", max_bytes)
        files.append(sink.incoming)
        try:
            async for chunk in _chunks(upload):
                await sink.write(chunk)
                if sink.incoming.too_large:
                    break
        finally:
            await sink.close()
            await upload.close()


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk
