"""Deciding what an uploaded file is, and preparing what gets stored (SECURITY.md S42, S44, S45).

Everything here is synchronous and CPU-bound: callers run :func:`prepare` in a worker thread.

- The type comes from the bytes only, never from the file name or the client's header (S42):
  Pillow with a format allow-list (JPEG, PNG, WebP, GIF) for images, ``puremagic`` plus the
  ``%PDF-`` signature for PDF, and strict UTF-8 without NUL/control bytes for plain text.
  Text that a browser would sniff as HTML or that is SVG/XML is refused (WHATWG MIME
  Sniffing §7.1 lists the HTML signatures checked here).
- Images: the pixel count from the header is checked before any pixel is decoded (S44);
  Pillow's own ``MAX_IMAGE_PIXELS`` guard stays on as a backstop. The first frame is decoded,
  EXIF orientation applied, then the pixels are copied into a fresh image so no metadata
  (EXIF, GPS, XMP, ICC, comments) survives (S45); stored as WebP with the longest side at most
  1920 px, plus a 320 px WebP thumbnail.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
MAX_SIDE = 1920
THUMB_SIDE = 320
WEBP_QUALITY = 85
THUMB_QUALITY = 80
SNIFF_BYTES = 8192
# Pillow refuses images above twice this many pixels in Image.open (backstop for S44).
PILLOW_MAX_IMAGE_PIXELS = 40_000_000


@cache
def _pillow() -> ModuleType:
    """Pillow's ``Image`` module, imported on the first upload, not when a worker starts
    (it costs each worker about 2 MiB); its pixel backstop is set here."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = PILLOW_MAX_IMAGE_PIXELS
    return Image


# WHATWG MIME Sniffing §7.1 "rules for identifying an unknown MIME type": HTML signatures
# (matched case-insensitively after leading whitespace), plus XML/SVG.
_MARKUP_STARTS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<script",
    b"<iframe",
    b"<h1",
    b"<div",
    b"<font",
    b"<table",
    b"<a",
    b"<style",
    b"<title",
    b"<b",
    b"<body",
    b"<br",
    b"<p",
    b"<!--",
    b"<?xml",
    b"<svg",
)
_MARKUP_ANYWHERE = (b"<svg", b"<html", b"<script", b"<!doctype")
_ALLOWED_CONTROLS = {0x09, 0x0A, 0x0C, 0x0D}

TYPE_NOT_ALLOWED = (
    "This kind of file is not allowed. Upload JPEG, PNG, WebP or GIF images, "
    "PDF documents or plain text."
)


class Rejected(Exception):
    """The upload is refused. ``reason`` is a short code for the audit trail (S52),
    ``status`` the HTTP status to answer, ``message`` the text shown to the person."""

    def __init__(self, reason: str, status: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Prepared:
    """What to store for one upload.

    ``data`` holds the bytes to store (re-encoded images); ``None`` means "store the
    uploaded file as it is" (PDF, text). ``size`` and ``checksum`` (SHA-256 hex) describe
    the stored file. ``metadata`` is the JSON kept in ``assets.metadata``.
    """

    mime_type: str
    extension: str
    size: int
    checksum: str
    data: bytes | None = None
    thumbnail: bytes | None = None
    metadata: dict[str, Any] | None = field(default=None)


def prepare(path: Path, *, max_pixels: int) -> Prepared:
    """Decide what the file at ``path`` is and prepare the stored form.

    Raises :class:`Rejected` (``empty`` 422, ``type_not_allowed`` 415, ``markup`` 415,
    ``too_many_pixels`` 422, ``image_unreadable`` 422).
    """
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        raise Rejected("empty", 422, "The file is empty.")
    image = _open_image(path)
    if image is not None:
        return _prepare_image(image, max_pixels)
    if head.startswith(b"%PDF-") and _puremagic_says_pdf(head):
        return _as_is(path, "application/pdf", "pdf")
    if _is_plain_text(path, head):
        return _as_is(path, "text/plain", "txt")
    raise Rejected("type_not_allowed", 415, TYPE_NOT_ALLOWED)


def _open_image(path: Path) -> Image.Image | None:
    pillow = _pillow()
    try:
        return pillow.open(path, formats=IMAGE_FORMATS)  # type: ignore[no-any-return]
    except pillow.DecompressionBombError:
        raise Rejected(
            "too_many_pixels", 422, "The image has too many pixels to be processed."
        ) from None
    except (pillow.UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _prepare_image(image: Image.Image, max_pixels: int) -> Prepared:
    from PIL import ImageOps

    pillow = _pillow()
    with image:
        width, height = image.size  # from the header; nothing decoded yet
        if width * height > max_pixels:
            raise Rejected(
                "too_many_pixels",
                422,
                f"The image is {width}×{height} pixels; the limit is "
                f"{max_pixels / 1_000_000:g} megapixels.",
            )
        source_format = str(image.format).lower()
        try:
            image.seek(0)  # GIF: the first frame only
            if image.format == "JPEG":
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at a reduced scale when large
            image.load()
            oriented = ImageOps.exif_transpose(image)
            has_alpha = oriented.mode in ("RGBA", "LA", "PA") or (
                oriented.mode == "P" and "transparency" in oriented.info
            )
            mode = "RGBA" if has_alpha else "RGB"
            converted = oriented.convert(mode)
        except Exception:  # damaged data or EXIF (Pillow raises many kinds): refuse the file
            raise Rejected(
                "image_unreadable", 422, "The image could not be read (damaged or truncated)."
            ) from None
    # A fresh image carries pixels only: no EXIF, GPS, XMP, ICC profile or comments (S45).
    clean = pillow.new(mode, converted.size)
    clean.paste(converted)
    clean.thumbnail((MAX_SIDE, MAX_SIDE), pillow.Resampling.LANCZOS)
    data = _webp(clean, WEBP_QUALITY)
    thumb = clean.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), pillow.Resampling.LANCZOS)
    return Prepared(
        mime_type="image/webp",
        extension="webp",
        size=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
        data=data,
        thumbnail=_webp(thumb, THUMB_QUALITY),
        metadata={
            "width": clean.width,
            "height": clean.height,
            "format": "webp",
            "original_format": source_format,
            "original_width": width,
            "original_height": height,
        },
    )


def _webp(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def _puremagic_says_pdf(head: bytes) -> bool:
    import puremagic  # on the first PDF-like upload, not when a worker starts (about 1 MiB)

    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        return False
    return any(m.mime_type == "application/pdf" for m in matches)


def _is_plain_text(path: Path, head: bytes) -> bool:
    """UTF-8 (optional BOM), no NUL or other control bytes but tab/LF/FF/CR, not markup."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if any(ord(c) < 0x20 and ord(c) not in _ALLOWED_CONTROLS for c in text) or "\x7f" in text:
        return False
    if looks_like_markup(head):
        raise Rejected("markup", 415, "HTML, SVG and XML files are not allowed.")
    return True


def looks_like_markup(head: bytes) -> bool:
    """True when a browser could sniff ``head`` as HTML, or it is XML/SVG."""
    lowered = head.lstrip(b" \t\n\r\x0c").lower()
    if lowered.startswith(b"\xef\xbb\xbf"):
        lowered = lowered[3:].lstrip(b" \t\n\r\x0c")
    for signature in _MARKUP_STARTS:
        # WHATWG: the signature must be followed by a tag-terminating byte (space or '>').
        if lowered.startswith(signature):
            rest = lowered[len(signature) : len(signature) + 1]
            if signature in (b"<!--", b"<?xml") or rest in (b" ", b">", b"\t", b"\n", b"\r", b""):
                return True
    window = lowered[:1024]
    return any(marker in window for marker in _MARKUP_ANYWHERE)


def _as_is(path: Path, mime_type: str, extension: str) -> Prepared:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    return Prepared(
        mime_type=mime_type, extension=extension, size=size, checksum=digest.hexdigest()
    )
