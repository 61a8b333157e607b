"""Shapes around assets: display names, ids from URLs, and ``Content-Disposition`` values."""

from __future__ import annotations

import unicodedata
import uuid
from urllib.parse import quote

from features.assets.models import ORIGINAL_NAME_MAX

PER_PAGE = 48
MAX_FILES_PER_REQUEST = 20


def display_name(raw: str) -> str:
    """Turn a client-sent file name into display text (SECURITY.md S43, S51).

    Keeps the last path segment only (``/`` and ``\\`` separate), drops control characters
    (NUL, CR, LF …) and Unicode format characters (bidi overrides), NFC-normalises, trims
    dots and spaces at the ends, and shortens to 255 characters keeping the extension.
    Never used to build a path. Returns ``"file"`` when nothing is left.
    """
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    name = name.strip(" .")
    if len(name) > ORIGINAL_NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: ORIGINAL_NAME_MAX - len(ext) - 1] + "." + ext
        else:
            name = name[:ORIGINAL_NAME_MAX]
    return name or "file"


def download_name(original_name: str, extension: str) -> str:
    """The name a download is saved under: the original name, with the extension of what is
    actually stored (an uploaded ``photo.jpg`` stored as WebP downloads as ``photo.webp``)."""
    stem, dot, ext = original_name.rpartition(".")
    if dot and stem and ext.lower() == extension:
        return original_name
    if dot and stem and extension == "webp":
        return f"{stem}.{extension}"
    if ext.lower() == extension:
        return original_name
    return f"{original_name}.{extension}"


def content_disposition(kind: str, filename: str) -> str:
    """``inline``/``attachment`` with an ASCII ``filename`` fallback and the exact name as
    ``filename*`` (RFC 6266 §4.3, RFC 8187 UTF-8 percent-encoding)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;%' else "_" for c in filename
    )
    encoded = quote(filename, safe="")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def parse_id(raw: str) -> uuid.UUID | None:
    """The UUID in ``raw``, or ``None`` (the handler answers 404)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def parse_page(raw: str | None) -> int | None:
    """A positive page number, or ``None`` when ``raw`` is not one (404)."""
    raw = raw or "1"
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 10**9:
        return int(raw)
    return None
