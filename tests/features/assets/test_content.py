"""Type decisions, markup sniffing, display names and Content-Disposition (S42, S43, S46)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from features.assets.content import Rejected, looks_like_markup, prepare
from features.assets.schemas import content_disposition, display_name, download_name
from tests.features.assets.helpers import PDF_BYTES, image_bytes


@pytest.mark.parametrize(
    ("head", "markup"),
    [
        (b"<!DOCTYPE html>", True),
        (b"\xef\xbb\xbf  <HTML>", True),
        (b"<p>hello", True),
        (b"<b>bold</b>", True),
        (b"<?xml version='1.0'?><x/>", True),
        (b"plain text with <svg> inside", True),
        (b"<br/>", False),  # WHATWG needs a space or '>' after the tag name
        (b"a < b and c > d", False),
        (b"Meeting notes\n- item", False),
        (b"<<<>>>", False),
    ],
)
def test_s42_markup_sniffing_follows_the_html_signatures(head, markup):
    assert looks_like_markup(head) is markup


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (image_bytes("PNG"), "image/webp"),
        (image_bytes("GIF"), "image/webp"),
        (PDF_BYTES, "application/pdf"),
        ("Ünïcödé text\r\n\ttabbed\n".encode(), "text/plain"),
        (b"\xef\xbb\xbfwith a BOM", "text/plain"),
        (b"%PDF", "text/plain"),  # a signature alone is not a PDF; it is valid text
    ],
)
def test_s42_allowed_types(tmp_path, data, mime):
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    assert prepare(path, max_pixels=40_000_000).mime_type == mime


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"text with a NUL\x00 byte", "type_not_allowed"),
        (b"\xff\xfe latin-1 \xe9", "type_not_allowed"),
        (b"escape \x1b[31m codes", "type_not_allowed"),
        (image_bytes("TIFF"), "type_not_allowed"),
        (image_bytes("BMP"), "type_not_allowed"),
    ],
)
def test_s42_refused_types(tmp_path, data, reason):
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    with pytest.raises(Rejected) as caught:
        prepare(path, max_pixels=40_000_000)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("photo.jpg", "photo.jpg"),
        ("C:\\Users\\ann\\photo.jpg", "photo.jpg"),
        ("../../x.txt", "x.txt"),
        ("a\r\nb.txt", "ab.txt"),
        ("  .hidden  ", "hidden"),
        ("", "file"),
        ("e\u0301t\u00e9.txt", "été.txt"),  # NFC
        ("x" * 300, "x" * 255),
    ],
)
def test_s43_display_name(raw, shown):
    assert display_name(raw) == shown


def test_s46_content_disposition_has_an_ascii_fallback_and_rfc6266_filename_star():
    value = content_disposition("attachment", 'Ünï "q"; %x.pdf')
    assert value == (
        'attachment; filename="_n_ _q__ _x.pdf"; '
        "filename*=UTF-8''%C3%9Cn%C3%AF%20%22q%22%3B%20%25x.pdf"
    )
    assert download_name("photo.JPG", "webp") == "photo.webp"
    assert download_name("notes", "txt") == "notes.txt"
    assert download_name("a.pdf", "pdf") == "a.pdf"


def test_gif_keeps_only_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (30, 20), color) for color in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.part"
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    prepared = prepare(path, max_pixels=40_000_000)
    still = Image.open(io.BytesIO(prepared.data))
    assert getattr(still, "n_frames", 1) == 1
    red, _green, blue = still.convert("RGB").getpixel((5, 5))
    assert red > 200 and blue < 60
    assert prepared.metadata["original_format"] == "gif"


def test_s45_png_text_chunks_and_icc_profile_are_not_kept(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ann Secret")
    info.add_text("Location", "48.85,2.29")
    path = tmp_path / "meta.part"
    Image.new("RGB", (50, 50), (1, 2, 3)).save(path, "PNG", pnginfo=info, icc_profile=b"\0" * 128)
    prepared = prepare(path, max_pixels=40_000_000)
    for data in (prepared.data, prepared.thumbnail):
        assert b"Ann Secret" not in data and b"48.85" not in data
        stored = Image.open(io.BytesIO(data))
        assert not {"exif", "xmp", "icc_profile"} & set(stored.info)
