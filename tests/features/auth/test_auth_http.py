"""Sign-up, sign-in and sign-out over HTTP (SECURITY.md S1–S6, S11, S13, S16, S50)."""

from __future__ import annotations

import sqlite3

from sqlalchemy import select

from features.sessions.models import BrowserSession
from features.users.models import User
from tests.support import DEFAULT_PASSWORD, csrf, login, mails_to, post_form, register


async def count_users(app) -> int:
    async with app.state.db.reader() as session:
        return len((await session.scalars(select(User))).all())


async def test_register_signs_in_and_lands_on_dashboard(client):
    response = await register(client, "ann@example.com", name="Ann")
    assert response.headers["location"] == "/dashboard"
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert "Hello, Ann" in page.text
    assert "Welcome to Slicestar, Ann." in page.text


async def test_register_invalid_input_rerenders_with_field_errors_and_writes_nothing(client, app):
    response = await post_form(
        client,
        "/register",
        {
            "name": "",
            "email": "not-an-email",
            "password": "short",
            "password_confirmation": "short",
        },
    )
    assert response.status_code == 422
    assert "Enter your name." in response.text
    assert "Enter a valid email address" in response.text
    assert "Use at least 8 characters." in response.text
    assert 'value="not-an-email"' in response.text
    assert await count_users(app) == 0


async def test_register_refuses_a_name_no_mail_header_can_carry(client, app):
    for name in ("Ann\x7fSmith", "Ann\x85Smith", "Ann\u2028Smith"):
        response = await post_form(
            client,
            "/register",
            {
                "name": name,
                "email": "ann@example.com",
                "password": "a long enough passphrase",
                "password_confirmation": "a long enough passphrase",
            },
        )
        assert response.status_code == 422, repr(name)
        assert "A name cannot contain control characters." in response.text
    assert await count_users(app) == 0


async def test_register_refuses_a_utf8_local_part_and_stores_an_idn_domain_as_ascii(client, app):
    form = {"name": "Ann", "password": DEFAULT_PASSWORD, "password_confirmation": DEFAULT_PASSWORD}
    refused = await post_form(client, "/register", {**form, "email": "jörg@example.com"})
    assert refused.status_code == 422
    assert "plain ASCII letters" in refused.text and 'value="jörg@example.com"' in refused.text
    assert await count_users(app) == 0
    done = await post_form(client, "/register", {**form, "email": "Ann@Bücher.Example"})
    assert done.status_code == 303
    async with app.state.db.reader() as session:
        assert await session.scalar(select(User.email)) == "ann@xn--bcher-kva.example"
    [mail] = await mails_to(client, "ann@xn--bcher-kva.example")
    assert mail.to == "Ann <ann@xn--bcher-kva.example>"


async def test_register_mismatched_passwords_are_refused(client, app):
    response = await post_form(
        client,
        "/register",
        {
            "name": "Ann",
            "email": "ann@example.com",
            "password": DEFAULT_PASSWORD,
            "password_confirmation": DEFAULT_PASSWORD + "!",
        },
    )
    assert response.status_code == 422
    assert "The two passwords do not match." in response.text
    assert DEFAULT_PASSWORD not in response.text  # passwords are never echoed back
    assert await count_users(app) == 0


async def test_s7_taken_email_gets_the_same_answer_and_the_owner_a_mail(client, other_client, app):
    await register(client, "ann@example.com")
    fresh = await register(other_client, "new@example.com", verify=False)
    taken = await post_form(
        other_client,
        "/register",
        {
            "name": "Other",
            "email": " ANN@example.com ",
            "password": DEFAULT_PASSWORD,
            "password_confirmation": DEFAULT_PASSWORD,
        },
    )
    assert taken.status_code == fresh.status_code == 303
    assert taken.headers["location"] == fresh.headers["location"] == "/register/check-email"
    page = await other_client.get("/register/check-email")
    assert "Check your inbox" in page.text and "We sent a link to ann@example.com." in page.text
    assert await count_users(app) == 2
    [notice, verification] = await mails_to(other_client, "ann@example.com")
    assert notice.subject == "Slicestar: You already have an account"
    assert "nothing was created" in notice.text and not notice.links[0].count("verify-email")
    assert "Verify your email address" in verification.subject  # the one from Ann's own sign-up


async def test_s3_common_and_overlong_passwords_are_refused_long_unicode_accepted(
    client, other_client
):
    for password, message in (("password123", "too common"), ("x" * 4097, "too long")):
        response = await post_form(
            client,
            "/register",
            {
                "name": "Ann",
                "email": "ann@example.com",
                "password": password,
                "password_confirmation": password,
            },
        )
        assert response.status_code == 422
        assert message in response.text
    long_unicode = "ünïcødé pässphrase ✓ " * 5  # 105 characters, kept whole
    await register(other_client, "uni@example.com", password=long_unicode)
    await other_client.post("/logout", data={"_csrf_token": await csrf(other_client, "/dashboard")})
    assert (await login(other_client, "uni@example.com", long_unicode)).status_code == 303
    assert (await login(client, "uni@example.com", long_unicode[:-1])).status_code == 422


async def test_login_with_normalised_email_and_logout(client):
    await register(client, "ann@example.com")
    await client.post("/logout", data={"_csrf_token": await csrf(client, "/dashboard")})
    response = await login(client, "  Ann@Example.COM ")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"


async def test_s5_unknown_user_and_wrong_password_get_the_same_answer(client, other_client):
    await register(client, "ann@example.com")
    wrong = await login(other_client, "ann@example.com", "wrong password!")
    unknown = await login(other_client, "nobody@example.com", "wrong password!")
    assert wrong.status_code == unknown.status_code == 422
    assert "The email or password is incorrect." in wrong.text
    assert "The email or password is incorrect." in unknown.text
    strip = lambda html: html.split("<main", 1)[1].split("</main>", 1)[0]  # noqa: E731
    import re

    token = re.compile(r'value="[^"]*"')
    assert token.sub("", strip(wrong.text)) == token.sub("", strip(unknown.text))


async def test_s6_unknown_email_still_runs_one_argon2_verify(client, app, monkeypatch):
    calls: list[str | None] = []
    passwords = app.state.passwords
    original = passwords.verify

    async def spy(password_hash, password):
        calls.append(password_hash)
        return await original(password_hash, password)

    monkeypatch.setattr(passwords, "verify", spy)
    await login(client, "nobody@example.com", "whatever password")
    assert calls == [None]  # verify ran (against the dummy hash inside Passwords)


async def test_s1_hash_is_argon2id_at_owasp_baseline(client, app):
    await register(client, "ann@example.com")
    async with app.state.db.reader() as session:
        user = await session.scalar(select(User))
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_s2_outdated_hash_is_rehashed_on_login_but_not_on_failure(client, app):
    from shared.security.passwords import Passwords

    old = await Passwords(time_cost=1, memory_kib=8192).hash(DEFAULT_PASSWORD)
    await register(client, "ann@example.com")
    async with app.state.db.writer() as session:
        user = await session.scalar(select(User))
        user.password_hash = old
        await session.commit()
    assert (await login(client, "ann@example.com", "wrong password!")).status_code == 422
    async with app.state.db.reader() as session:
        assert (await session.scalar(select(User.password_hash))) == old
    assert (await login(client, "ann@example.com")).status_code == 303
    async with app.state.db.reader() as session:
        new_hash = await session.scalar(select(User.password_hash))
    assert new_hash != old and new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_s11_session_id_rotates_on_login(client, app):
    await register(client, "ann@example.com")
    first = client.cookies.get("session")
    assert (await login(client, "ann@example.com")).status_code == 303
    second = client.cookies.get("session")
    assert first and second and first != second
    async with app.state.db.reader() as session:
        assert len((await session.scalars(select(BrowserSession))).all()) == 1
    client.cookies.clear()
    client.cookies.set("session", first)
    response = await client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_s13_session_cookie_flags(client):
    response = await register(client, "ann@example.com")
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("session="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered
    assert "domain=" not in lowered and "max-age" not in lowered  # browser-session cookie


async def test_remember_me_sets_a_persistent_cookie(client):
    await register(client, "ann@example.com")
    response = await login(client, "ann@example.com", remember=True)
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("session="))
    assert f"Max-Age={30 * 86400}" in cookie


async def test_s16_logout_is_post_only_and_deletes_the_row(client, app):
    await register(client, "ann@example.com")
    assert (await client.get("/logout")).status_code == 405
    token = client.cookies.get("session")
    response = await client.post("/logout", data={"_csrf_token": await csrf(client, "/dashboard")})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    async with app.state.db.reader() as session:
        assert (await session.scalars(select(BrowserSession))).all() == []
    client.cookies.clear()
    client.cookies.set("session", token)
    assert (await client.get("/dashboard")).status_code == 303


async def test_s16_signed_in_pages_are_not_cached(client):
    await register(client, "ann@example.com")
    response = await client.get("/dashboard")
    assert response.headers["cache-control"] == "no-store"


async def test_s50_next_is_honoured_only_for_local_paths(client, other_client):
    await register(client, "ann@example.com")
    await client.post("/logout", data={"_csrf_token": await csrf(client, "/dashboard")})
    for target, expected in (
        ("/tasks?status=pending", "/tasks?status=pending"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
    ):
        response = await post_form(
            client,
            "/login",
            {"email": "ann@example.com", "password": DEFAULT_PASSWORD, "next": target},
        )
        assert response.headers["location"] == expected, target
        await client.post("/logout", data={"_csrf_token": await csrf(client, "/dashboard")})


async def test_anonymous_page_is_redirected_to_login_with_next(client):
    response = await client.get("/tasks?q=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/tasks%3Fq%3Dx"


async def test_anonymous_visits_write_nothing(client, app, settings):
    for path in ("/login", "/register", "/healthz", "/nope"):
        await client.get(path)
    if settings.is_sqlite:
        db_path = settings.database_url.split("///", 1)[1]
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("select count(*) from sessions").fetchone()[0] == 0
