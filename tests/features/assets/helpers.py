"""Real file bytes for upload tests (made with Pillow, or crafted by hand) and upload helpers."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from httpx import AsyncClient, Cookies, Response
from PIL import Image
from sqlalchemy import select

from features.assets.models import Asset
from shared.database import Database
from tests.support import csrf, register


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color=(200, 30, 30), **kw):
    """An image of ``size`` in ``fmt`` (PNG, JPEG, WEBP, GIF)."""
    mode = "RGBA" if fmt in ("PNG", "WEBP") and len(color) == 4 else "RGB"
    image = Image.new(mode, size, color)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def jpeg_with_exif(size=(40, 20), orientation=6) -> bytes:
    """A JPEG with EXIF orientation, a camera model and GPS coordinates."""
    image = Image.new("RGB", size, (10, 120, 220))
    image.paste((250, 250, 0), (0, 0, size[0] // 2, size[1]))  # left half yellow
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x0110] = "SecretCam 3000"  # Model
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps  # GPSInfo IFD
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=90)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int, idat: bytes = b"\x78\x9c garbage") -> bytes:
    """A PNG whose IHDR declares ``width``×``height`` (8-bit RGB), with ``idat`` as pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_decompression_bomb(side: int = 12_000) -> bytes:
    """A real, valid 1-bit ``side``×``side`` PNG of zeros: a few KB that inflate to ~side²/8 bytes."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


async def sign_up(client: AsyncClient, email: str, name: str = "Test User") -> str:
    """Register ``email`` and return the CSRF token of the files page."""
    await register(client, email, name=name)
    return await csrf(client, "/assets")


async def upload(
    client: AsyncClient,
    token: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    *,
    js: bool = True,
) -> Response:
    """POST one file as the upload script does (token in the header, JSON answer), or as
    the plain form does (token as a form field, HTML answer) when ``js`` is False."""
    files = {"file" if js else "files": (name, data, content_type)}
    if js:
        headers = {"X-CSRF-Token": token, "Accept": "application/json"}
        return await client.post("/assets", files=files, headers=headers)
    return await client.post("/assets", files=files, data={"_csrf_token": token})


def swap_cookies(client: AsyncClient, jar: Cookies | None = None) -> Cookies:
    """Put ``jar`` (default: none) in ``client`` and return the cookies it had: several people
    take turns on one client (one event loop, which asyncpg connections need)."""
    old = Cookies(client.cookies)
    client.cookies = jar if jar is not None else Cookies()
    return old


def raw_multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"XyZzY0123") -> tuple:
    """A hand-built multipart body: ``parts`` are ``(header block, body)`` byte pairs."""
    body = b""
    for headers, content in parts:
        body += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary.decode()}"


@asynccontextmanager
async def own_db(app) -> AsyncIterator[Database]:
    """A database handle on the test's own event loop (asyncpg connections are bound to the
    loop that opened them; the app's pool may hold ones from the test client's loop)."""
    db = Database(app.state.settings.database_url)
    try:
        yield db
    finally:
        await db.dispose()


async def assets_in_db(app) -> list[Asset]:
    async with own_db(app) as db, db.reader() as session:
        return list((await session.scalars(select(Asset).order_by(Asset.created_at))).all())


def files_under(root: Path) -> list[str]:
    """Every file under ``root`` (relative POSIX paths), work folder included."""
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
