"""Uploads, serving, deletion and avatars over HTTP (SECURITY.md S38, S41–S46)."""

from __future__ import annotations

import asyncio
import io
import re
import uuid

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from sqlalchemy import select

from app import create_app
from features.assets import handlers
from features.users.models import User
from tests.features.assets.helpers import (
    PDF_BYTES,
    assets_in_db,
    files_under,
    image_bytes,
    jpeg_with_exif,
    own_db,
    png_declaring,
    png_decompression_bomb,
    raw_multipart,
    sign_up,
    swap_cookies,
    upload,
)
from tests.support import csrf_from

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def rejections(monkeypatch):
    """Record the ``upload_rejected`` events the handler emits (and still emit them)."""
    seen: list[dict] = []
    real = handlers.emit_security_event

    def spy(connection, name, **kwargs):
        seen.append({"name": name, **kwargs})
        return real(connection, name, **kwargs)

    monkeypatch.setattr(handlers, "emit_security_event", spy)
    return seen


@pytest.fixture
async def small(settings):
    """A client of an app with a 1000-byte file cap and a 2500-byte quota."""
    small_settings = settings.model_copy(
        update={"asset_max_bytes": 1000, "asset_quota_bytes": 2500}
    )
    app = create_app(small_settings)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        test_client.follow_redirects = False
        test_client.app_under_test = app
        yield test_client


async def test_upload_image_then_list_open_and_download(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, "Holiday photo.jpg", image_bytes("JPEG", (3000, 1000)))
    assert response.status_code == 201, response.text
    [asset] = await assets_in_db(app)
    assert asset.mime_type == "image/webp"
    assert asset.metadata_["width"] == 1920 and asset.metadata_["height"] == 640
    assert asset.metadata_["format"] == "webp" and asset.metadata_["original_format"] == "jpeg"
    assert re.fullmatch(rf"{UUID}/{UUID}\.webp", asset.path)
    assert asset.path.startswith(str(asset.user_id))
    assert (settings.storage_dir / asset.path).stat().st_size == asset.size
    assert files_under(settings.storage_dir) == sorted([asset.path, asset.thumbnail_path])

    listing = await client.get("/assets")
    assert listing.status_code == 200
    assert "Holiday photo.jpg" in listing.text
    assert f"/assets/{asset.id}/thumb" in listing.text

    opened = await client.get(f"/assets/{asset.id}/file")
    assert opened.status_code == 200
    assert Image.open(io.BytesIO(opened.content)).size == (1920, 640)
    thumb = await client.get(f"/assets/{asset.id}/thumb")
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 107)
    download = await client.get(f"/assets/{asset.id}/download")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''Holiday%20photo.webp" in download.headers["content-disposition"]


async def test_plain_form_without_javascript_uploads_several_files(client, app):
    token = await sign_up(client, "ann@example.com")
    body, content_type = raw_multipart(
        [
            (b'Content-Disposition: form-data; name="_csrf_token"', token.encode()),
            (
                b'Content-Disposition: form-data; name="files"; filename="a.png"\r\n'
                b"Content-Type: image/png",
                image_bytes("PNG"),
            ),
            (
                b'Content-Disposition: form-data; name="files"; filename="notes.txt"\r\n'
                b"Content-Type: text/plain",
                "Grüße\n".encode(),
            ),
            (b'Content-Disposition: form-data; name="files"; filename="b.pdf"', PDF_BYTES),
        ]
    )
    response = await client.post("/assets", content=body, headers={"content-type": content_type})
    assert response.status_code == 303, response.text
    page = await client.get("/assets")
    assert "Uploaded 3 files." in page.text
    types = sorted(a.mime_type for a in await assets_in_db(app))
    assert types == ["application/pdf", "image/webp", "text/plain"]


async def test_no_file_chosen_is_422(client):
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, "", b"", js=False)
    assert response.status_code == 422
    assert "Choose a file to upload." in response.text


async def test_upload_without_or_with_a_wrong_csrf_token_is_403(client, app, settings):
    await sign_up(client, "ann@example.com")
    files = {"file": ("a.png", image_bytes("PNG"), "image/png")}
    assert (await client.post("/assets", files=files)).status_code == 403
    bad = {"X-CSRF-Token": "x" * 43}
    assert (await client.post("/assets", files=files, headers=bad)).status_code == 403
    assert await assets_in_db(app) == []
    assert files_under(settings.storage_dir) == []


@pytest.mark.parametrize("js", [True, False], ids=["streamed", "form"])
async def test_s41_file_at_the_cap_is_stored_one_byte_more_is_413_and_leaves_nothing(
    small, settings, js, rejections
):
    token = await sign_up(small, "ann@example.com")
    at_cap = await upload(small, token, "a.txt", b"a" * 1000, js=js)
    assert at_cap.status_code in (201, 303), at_cap.text
    before = files_under(settings.storage_dir)
    over = await upload(small, token, "b.txt", b"b" * 1001, js=js)
    assert over.status_code == 413
    assert "larger than the" in over.text
    assert files_under(settings.storage_dir) == before  # no partial file, no work file
    assert [a.original_name for a in await assets_in_db(small.app_under_test)] == ["a.txt"]
    assert [(e["name"], e["reason"]) for e in rejections] == [("upload_rejected", "too_large")]


async def test_s41_quota_up_to_the_limit_then_one_byte_more_is_refused(small, settings):
    token = await sign_up(small, "ann@example.com")
    for name, size in (("a.txt", 1000), ("b.txt", 1000), ("c.txt", 500)):
        response = await upload(small, token, name, b"q" * size)
        assert response.status_code == 201, response.text
    before = files_under(settings.storage_dir)
    over = await upload(small, token, "d.txt", b"1")
    assert over.status_code == 422
    assert "storage is full" in over.json()["errors"][0]["message"]
    assert files_under(settings.storage_dir) == before
    page = await small.get("/assets")
    assert "2.4 KB of 2.4 KB used" in page.text


async def test_s38_s41_quota_counts_only_the_owners_files(small):
    token = await sign_up(small, "ann@example.com")
    for name in ("a.txt", "b.txt"):
        assert (await upload(small, token, name, b"x" * 1000)).status_code == 201
    small.cookies.clear()
    bob = await sign_up(small, "bob@example.com")
    assert (await upload(small, bob, "c.txt", b"y" * 1000)).status_code == 201
    assert "1000 bytes of 2.4 KB used · 1 file" in (await small.get("/assets")).text


MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("cap", "limit"),
    [(10 * MiB, 64 * MiB), (1000, 64 * MiB), (32 * MiB, 64 * MiB), (40 * MiB, 80 * MiB)],
)
def test_s41_upload_route_body_limit_follows_asset_max_bytes(settings, cap, limit):
    app = create_app(settings.model_copy(update={"asset_max_bytes": cap}))
    [route] = [r for r in app.routes if r.path == "/assets"]
    [handler] = [h for h in route.route_handlers if "POST" in h.http_methods]
    assert handler.resolve_request_max_body_size() == limit
    # Only the upload route: every other route keeps the app's default limit.
    delete = app.get_handler_index_by_name("assets.delete")["handler"]
    assert delete.resolve_request_max_body_size() == 10_000_000


async def test_s41_the_request_limit_grows_with_the_cap(settings, monkeypatch):
    # Scaled down: a 5000-byte floor and a 4000-byte cap give an 8000-byte route limit (the
    # real floor is 64 MiB). Two files at 3500 bytes pass the floor but fit the limit; three
    # do not. The plain form carries them all in one request.
    monkeypatch.setattr(handlers, "UPLOAD_REQUEST_MIN_BYTES", 5000)
    app = create_app(settings.model_copy(update={"asset_max_bytes": 4000}))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as browser:
        browser.follow_redirects = False
        token = await sign_up(browser, "ann@example.com")
        two = [("files", (f"{n}.txt", b"t" * 3500, "text/plain")) for n in "ab"]
        response = await browser.post("/assets", files=two, data={"_csrf_token": token})
        assert response.status_code == 303, response.text
        three = [("files", (f"{n}.txt", b"t" * 3500, "text/plain")) for n in "cde"]
        response = await browser.post("/assets", files=three, data={"_csrf_token": token})
        assert response.status_code == 413
    assert sorted(a.original_name for a in await assets_in_db(app)) == ["a.txt", "b.txt"]


@pytest.mark.parametrize("js", [True, False], ids=["streamed", "form"])
async def test_s41_a_body_over_the_route_limit_is_413_before_the_handler_runs(
    client, app, settings, js, rejections
):
    # Lower this app's copy of the route's limit (the CSRF middleware reads the plain form's
    # body under the same limit, before any handler code runs).
    [route] = [r for r in app.routes if r.path == "/assets"]
    [handler] = [h for h in route.route_handlers if "POST" in h.http_methods]
    handler.request_max_body_size = 5000
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, "big.txt", b"z" * 6000, js=js)
    assert response.status_code == 413
    reason = (
        "The upload is too large: one upload may carry at most 4.9 KB in all, "
        "and each file at most 10 MB. Choose fewer or smaller files."
    )
    if js:
        assert response.json() == {"assets": [], "errors": [{"name": "", "message": reason}]}
    else:  # the page says it too
        assert reason in response.text and "<h1>Too large</h1>" in response.text
    assert [(e["name"], e["reason"], e["status"]) for e in rejections] == [
        ("upload_rejected", "too_large", 413)
    ]
    assert rejections[0]["user_id"] is not None
    ok = await upload(client, token, "small.txt", b"z" * 4000, js=js)
    assert ok.status_code in (201, 303)
    assert [a.original_name for a in await assets_in_db(app)] == ["small.txt"]
    assert len(files_under(settings.storage_dir)) == 1


@pytest.mark.parametrize(
    ("name", "data", "content_type", "stored_type"),
    [
        ("report.pdf", image_bytes("PNG"), "application/pdf", "image/webp"),
        ("photo.jpg", b"just some words\n", "image/jpeg", "text/plain"),
        ("notes.txt", PDF_BYTES, "text/plain", "application/pdf"),
        ("anim.gif", image_bytes("GIF"), "application/octet-stream", "image/webp"),
        ("pic.webp", image_bytes("WEBP"), "image/webp", "image/webp"),
    ],
)
async def test_s42_type_is_decided_by_the_bytes(client, app, name, data, content_type, stored_type):
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, name, data, content_type)
    assert response.status_code == 201, response.text
    [asset] = await assets_in_db(app)
    assert asset.mime_type == stored_type
    served = await client.get(f"/assets/{asset.id}/file")
    assert served.headers["content-type"].split(";")[0] == stored_type


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.png", b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>"),
        ("photo.png", b"  \n<html><body onload=alert(1)>hi</body></html>"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("logo.txt", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'),
        ("poly.gif", b"GIF89a=1;/*<script>alert(1)</script>*/"),
        ("app.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"),
        ("data.bin", bytes(range(256))),
        ("archive.png", b"PK\x03\x04" + b"\x00" * 40),
        ("pic.bmp", image_bytes("BMP")),
    ],
)
async def test_s42_renamed_html_svg_and_other_types_are_refused_with_415(
    client, app, settings, name, data, rejections
):
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, name, data, "image/png")
    assert response.status_code == 415, response.text
    assert "not allowed" in response.json()["errors"][0]["message"]
    assert await assets_in_db(app) == []
    assert files_under(settings.storage_dir) == []
    assert rejections[0]["reason"] in ("type_not_allowed", "markup")
    assert rejections[0]["outcome"] == "failure"


async def test_s42_png_html_polyglot_is_reencoded_so_the_payload_is_gone(client, app):
    token = await sign_up(client, "ann@example.com")
    payload = b"<html><script>alert(document.domain)</script></html>"
    response = await upload(client, token, "poly.png", image_bytes("PNG") + payload, "text/html")
    assert response.status_code == 201, response.text
    [asset] = await assets_in_db(app)
    served = await client.get(f"/assets/{asset.id}/file")
    assert served.headers["content-type"] == "image/webp"
    assert b"<script" not in served.content
    assert served.content[:4] == b"RIFF" and served.content[8:12] == b"WEBP"


async def test_s44_png_declaring_50000_by_50000_is_refused_without_decoding(client, app):
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, "huge.png", png_declaring(50_000, 50_000))
    assert response.status_code == 422
    assert "pixels" in response.json()["errors"][0]["message"]
    assert await assets_in_db(app) == []


async def test_s44_pixel_cap_is_checked_from_the_header_before_decoding(settings):
    # The IDAT is garbage: decoding would fail with "could not be read"; the header check
    # must answer first, with the pixel message.
    app = create_app(settings.model_copy(update={"asset_max_pixels": 1_000_000}))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as capped:
        capped.follow_redirects = False
        token = await sign_up(capped, "ann@example.com")
        response = await upload(capped, token, "wide.png", png_declaring(2000, 501))
        assert response.status_code == 422
        message = response.json()["errors"][0]["message"]
        assert message == "The image is 2000×501 pixels; the limit is 1 megapixels."
        ok = await upload(capped, token, "ok.png", image_bytes("PNG", (1000, 1000)))
        assert ok.status_code == 201


async def test_s44_decompression_bomb_is_refused(client, app):
    bomb = png_decompression_bomb(12_000)
    assert len(bomb) < 100_000  # 144 megapixels in a few kilobytes
    token = await sign_up(client, "ann@example.com")
    response = await upload(client, token, "bomb.png", bomb, "image/png")
    assert response.status_code == 422
    assert "pixels" in response.json()["errors"][0]["message"]
    assert await assets_in_db(app) == []


async def test_truncated_image_is_refused_as_unreadable(client):
    token = await sign_up(client, "ann@example.com")
    png = Image.new("RGB", (300, 300))
    png.putdata([(i % 256, (i * 7) % 256, (i * 13) % 256) for i in range(300 * 300)])
    buffer = io.BytesIO()
    png.save(buffer, "PNG")
    data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    response = await upload(client, token, "cut.png", data)
    assert response.status_code == 422
    assert "could not be read" in response.json()["errors"][0]["message"]


async def test_s45_exif_gps_stripped_and_orientation_applied(client, app):
    original = jpeg_with_exif((40, 20), orientation=6)
    assert Image.open(io.BytesIO(original)).getexif().get(0x0112) == 6
    token = await sign_up(client, "ann@example.com")
    assert (await upload(client, token, "gps.jpg", original)).status_code == 201
    [asset] = await assets_in_db(app)
    for variant in ("file", "thumb"):
        served = (await client.get(f"/assets/{asset.id}/{variant}")).content
        image = Image.open(io.BytesIO(served))
        assert image.size == (20, 40)  # rotated upright
        assert dict(image.getexif()) == {}
        assert not {"exif", "xmp", "icc_profile"} & set(image.info)
        assert b"SecretCam" not in served and b"Exif" not in served
    # the top of the upright image is the (yellow) left half of the stored-sideways original
    top = Image.open(io.BytesIO((await client.get(f"/assets/{asset.id}/file")).content))
    red, green, blue = top.convert("RGB").getpixel((10, 5))
    assert red > 200 and green > 200 and blue < 80


async def test_s46_image_is_served_inline_with_safe_headers_and_etag(client, app):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, 'my "best" café.png', image_bytes("PNG"))
    [asset] = await assets_in_db(app)
    response = await client.get(f"/assets/{asset.id}/file")
    headers = response.headers
    assert headers["content-type"] == "image/webp"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("sandbox;")
    assert headers["content-disposition"] == (
        "inline; filename=\"my _best_ caf_.webp\"; filename*=UTF-8''my%20%22best%22%20caf%C3%A9.webp"
    )
    assert headers["cache-control"] == "private, no-cache"
    etag = headers["etag"]
    again = await client.get(f"/assets/{asset.id}/file", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""


async def test_s46_pdf_and_text_are_attachments_never_inline(client, app):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "Übersicht.pdf", PDF_BYTES, "application/pdf")
    await upload(client, token, "readme", b"hello", "text/html")
    pdf, text = await assets_in_db(app)
    for asset, media_type in ((pdf, "application/pdf"), (text, "text/plain")):
        response = await client.get(f"/assets/{asset.id}/file")
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == media_type
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-security-policy"].startswith("sandbox;")
        assert response.headers["x-content-type-options"] == "nosniff"
    response = await client.get(f"/assets/{pdf.id}/download")
    assert "filename*=UTF-8''%C3%9Cbersicht.pdf" in response.headers["content-disposition"]
    assert response.content == PDF_BYTES
    text_download = await client.get(f"/assets/{text.id}/download")
    assert "filename*=UTF-8''readme.txt" in text_download.headers["content-disposition"]
    assert (await client.get(f"/assets/{pdf.id}/thumb")).status_code == 404


async def test_s46_anonymous_visitors_get_no_file(client, app):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "a.png", image_bytes("PNG"))
    [asset] = await assets_in_db(app)
    client.cookies.clear()
    for path in (f"/assets/{asset.id}/file", f"/avatars/{asset.user_id}", asset.url):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


async def test_s38_another_user_cannot_see_download_delete_or_use_an_asset(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "private.png", image_bytes("PNG"))
    [asset] = await assets_in_db(app)
    swap_cookies(client)
    bob_token = await sign_up(client, "bob@example.com")
    for path in ("file", "thumb", "download", "delete"):
        response = await client.get(f"/assets/{asset.id}/{path}")
        assert response.status_code == 404, path
        assert b"RIFF" not in response.content
    for path in ("delete", "avatar"):
        response = await client.post(f"/assets/{asset.id}/{path}", data={"_csrf_token": bob_token})
        assert response.status_code == 404, path
    listing = await client.get("/assets")
    assert "private.png" not in listing.text and "0 files" in listing.text
    assert [a.id for a in await assets_in_db(app)] == [asset.id]
    assert (settings.storage_dir / asset.path).exists()
    async with own_db(app) as db, db.reader() as session:
        bob = await session.scalar(select(User).where(User.email == "bob@example.com"))
        assert bob.avatar_asset_id is None
    assert (await client.get("/assets/not-a-uuid/file")).status_code == 404
    assert (await client.get(f"/assets/{uuid.uuid4()}/file")).status_code == 404


HOSTILE_NAMES = [
    ("../../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
    ("/absolute/path/notes.txt", "notes.txt"),
    ("nul\x00byte.txt", "nulbyte.txt"),
    ("bidi\u202etxt.exe.txt", "biditxt.exe.txt"),
    ("....", "file"),
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE_NAMES)
async def test_s43_hostile_file_names_are_display_text_only(client, app, settings, raw, shown):
    token = await sign_up(client, "ann@example.com")
    disposition = b'Content-Disposition: form-data; name="file"; filename="'
    body, content_type = raw_multipart([(disposition + raw.encode() + b'"', b"plain words\n")])
    headers = {"content-type": content_type, "x-csrf-token": token, "accept": "application/json"}
    response = await client.post("/assets", content=body, headers=headers)
    assert response.status_code == 201, response.text
    [asset] = await assets_in_db(app)
    assert asset.original_name == shown
    assert re.fullmatch(rf"{UUID}/{UUID}\.txt", asset.path)
    assert files_under(settings.storage_dir) == [asset.path]
    assert not (settings.storage_dir.parent / "etc").exists()
    download = await client.get(f"/assets/{asset.id}/download")
    assert download.status_code == 200
    page = await client.get("/assets")
    assert "\x00" not in page.text


@pytest.mark.parametrize("js", [True, False], ids=["streamed", "form"])
async def test_s43_crlf_in_a_file_name_cannot_inject_headers(client, app, js):
    token = await sign_up(client, "ann@example.com")
    # Browsers send CR, LF and '"' in a file name as %0D, %0A and %22 (HTML "multipart/form-data
    # encoding"); the parser decodes them, so the server really sees a name with CR/LF.
    filename = b"report%0D%0ASet-Cookie: x=1; HttpOnly%0D%0AX-Injected: yes.txt"
    parts = [] if js else [(b'Content-Disposition: form-data; name="_csrf_token"', token.encode())]
    parts.append(
        (b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"', b"words\n")
    )
    body, content_type = raw_multipart(parts)
    headers = {"content-type": content_type}
    if js:
        headers |= {"x-csrf-token": token, "accept": "application/json"}
    response = await client.post("/assets", content=body, headers=headers)
    assert response.status_code == (201 if js else 303), response.text
    [asset] = await assets_in_db(app)
    assert asset.original_name == "reportSet-Cookie: x=1; HttpOnlyX-Injected: yes.txt"

    download = await client.get(f"/assets/{asset.id}/download")
    assert download.status_code == 200
    assert download.content == b"words\n"
    names = [name.lower() for name, _ in download.headers.raw]
    assert b"set-cookie" not in names and b"x-injected" not in names
    assert all(b"\r" not in value and b"\n" not in value for _, value in download.headers.raw)
    assert download.headers["content-disposition"] == (
        'attachment; filename="reportSet-Cookie: x=1_ HttpOnlyX-Injected: yes.txt"; '
        "filename*=UTF-8''reportSet-Cookie%3A%20x%3D1%3B%20HttpOnlyX-Injected%3A%20yes.txt"
    )
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_s43_a_raw_crlf_ends_the_part_header_so_no_file_is_taken(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    body, content_type = raw_multipart(
        [(b'Content-Disposition: form-data; name="file"; filename="a\r\nSet-Cookie: x=1.txt"',
          b"words\n")]
    )  # fmt: skip
    headers = {"content-type": content_type, "x-csrf-token": token, "accept": "application/json"}
    response = await client.post("/assets", content=body, headers=headers)
    assert response.status_code == 422, response.text  # the part lost its file name
    assert response.json()["errors"][0]["message"] == "Choose a file to upload."
    assert await assets_in_db(app) == []
    assert files_under(settings.storage_dir) == []


@pytest.mark.parametrize("js", [True, False], ids=["streamed", "form"])
async def test_s43_a_name_of_10000_characters_is_refused_a_long_one_shortened(
    client, app, settings, js
):
    token = await sign_up(client, "ann@example.com")
    # A 10k-character part header passes the multipart parser's header limit: 400, no file.
    response = await upload(client, token, "a" * 10_000 + ".png", image_bytes("PNG"), js=js)
    assert response.status_code == 400
    assert await assets_in_db(app) == []
    assert files_under(settings.storage_dir) == []
    response = await upload(client, token, "é" * 1000 + ".png", image_bytes("PNG"), js=js)
    assert response.status_code in (201, 303), response.text
    [asset] = await assets_in_db(app)
    assert asset.original_name == "é" * 251 + ".png"
    assert (await client.get("/assets")).status_code == 200


async def test_delete_asks_first_then_removes_row_and_files(client, app, settings):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "gone.png", image_bytes("PNG"))
    await upload(client, token, "kept.txt", b"stay\n")
    gone, kept = await assets_in_db(app)
    confirm = await client.get(f"/assets/{gone.id}/delete")
    assert confirm.status_code == 200 and "Delete “gone.png”?" in confirm.text
    response = await client.post(
        f"/assets/{gone.id}/delete", data={"_csrf_token": csrf_from(confirm.text)}
    )
    assert response.status_code == 303
    assert [a.id for a in await assets_in_db(app)] == [kept.id]
    assert files_under(settings.storage_dir) == [kept.path]
    assert (await client.get(f"/assets/{gone.id}/file")).status_code == 404
    assert (await client.get(response.headers["location"])).status_code == 200


async def test_avatar_shows_in_the_nav_for_everyone_and_goes_with_its_asset(client, app):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "me.png", image_bytes("PNG", (600, 400)))
    await upload(client, token, "cv.pdf", PDF_BYTES)
    image, pdf = await assets_in_db(app)
    refused = await client.post(f"/assets/{pdf.id}/avatar", data={"_csrf_token": token})
    assert refused.status_code == 422
    assert "Only an image" in refused.text
    assert (
        await client.post(f"/assets/{image.id}/avatar", data={"_csrf_token": token})
    ).status_code == 303
    nav = f"/avatars/{image.user_id}?v={image.id}"
    assert nav in (await client.get("/dashboard")).text

    ann = swap_cookies(client)
    await sign_up(client, "bob@example.com")
    seen = await client.get(nav)
    assert seen.status_code == 200
    assert seen.headers["content-type"] == "image/webp"
    assert seen.headers["cache-control"] == "private, max-age=3600"
    assert Image.open(io.BytesIO(seen.content)).size == (320, 213)
    assert (await client.get(f"/avatars/{uuid.uuid4()}")).status_code == 404

    bob = swap_cookies(client, ann)
    await client.post(f"/assets/{image.id}/delete", data={"_csrf_token": token})
    assert "/avatars/" not in (await client.get("/dashboard")).text
    swap_cookies(client, bob)
    assert (await client.get(nav)).status_code == 404
    async with own_db(app) as db, db.reader() as session:
        ann = await session.scalar(select(User).where(User.email == "ann@example.com"))
        assert ann.avatar_asset_id is None


async def test_avatar_can_be_removed_and_keeps_the_image(client, app):
    token = await sign_up(client, "ann@example.com")
    await upload(client, token, "me.png", image_bytes("PNG"))
    [image] = await assets_in_db(app)
    await client.post(f"/assets/{image.id}/avatar", data={"_csrf_token": token})
    response = await client.post("/assets/avatar/remove", data={"_csrf_token": token})
    assert response.status_code == 303
    assert "/avatars/" not in (await client.get("/dashboard")).text
    assert len(await assets_in_db(app)) == 1


async def test_form_upload_with_one_bad_file_reports_each_and_keeps_the_good(client, app):
    token = await sign_up(client, "ann@example.com")
    body, content_type = raw_multipart(
        [
            (b'Content-Disposition: form-data; name="_csrf_token"', token.encode()),
            (b'Content-Disposition: form-data; name="files"; filename="ok.png"', image_bytes()),
            (b'Content-Disposition: form-data; name="files"; filename="x.html"', b"<html>"),
        ]
    )
    response = await client.post("/assets", content=body, headers={"content-type": content_type})
    assert response.status_code == 415
    assert "Some files were not uploaded" in response.text
    assert "x.html" in response.text and "not allowed" in response.text
    assert [a.original_name for a in await assets_in_db(app)] == ["ok.png"]


async def test_assets_page_pages_and_refuses_bad_page_numbers(client):
    await sign_up(client, "ann@example.com")
    assert (await client.get("/assets?page=abc")).status_code == 404
    assert (await client.get("/assets?page=2")).status_code == 404
    assert (await client.get("/assets?page=1")).status_code == 200


async def test_too_many_files_or_a_malformed_body_are_refused_and_leave_nothing(
    client, app, settings
):
    token = await sign_up(client, "ann@example.com")
    parts = [
        (f'Content-Disposition: form-data; name="file"; filename="{n}.txt"'.encode(), b"x")
        for n in range(21)
    ]
    body, content_type = raw_multipart(parts)
    headers = {"content-type": content_type, "x-csrf-token": token, "accept": "application/json"}
    assert (await client.post("/assets", content=body, headers=headers)).status_code == 413
    headers["content-type"] = "multipart/form-data; boundary=nothere"
    garbage = b"--elsewhere\r\nnot a multipart body at all"
    assert (await client.post("/assets", content=garbage, headers=headers)).status_code == 400
    assert await assets_in_db(app) == []
    assert files_under(settings.storage_dir) == []


async def test_s41_concurrent_uploads_cannot_overshoot_the_quota(small):
    token = await sign_up(small, "ann@example.com")
    assert (await upload(small, token, "a.txt", b"a" * 1000)).status_code == 201
    results = await asyncio.gather(
        *(upload(small, token, f"{n}.txt", bytes([65 + n]) * 1000) for n in range(3))
    )
    assert sorted(r.status_code for r in results) == [201, 422, 422]
    assets = await assets_in_db(small.app_under_test)
    assert sum(a.size for a in assets) == 2000
