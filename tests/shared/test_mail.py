"""Mail delivery (README "Mail"): transports, messages, the delivery queue, the outbox page.

SMTP tests talk to a real server on 127.0.0.1 (aiosmtpd, ``tests.mail_server``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from litestar import Litestar

from app import create_app
from features.core.auth import mails
from shared.config import Settings
from shared.mail import (
    MailAddressError,
    MailConfigError,
    MailQueue,
    OutboxTransport,
    SMTPTransport,
    address,
    build_message,
    parse_sender,
    read_outbox,
    transport_for,
)
from tests.conftest import SECRET_KEY, make_browser, running
from tests.mail_server import free_port, smtp_server
from tests.support import post_form

SENDER = parse_sender("Slicestar <no-reply@slicestar.test>")


def message(to: str = "ann@example.com", subject: str = "Hello") -> EmailMessage:
    return build_message(
        sender=SENDER, to=address(to, "Ann"), subject=subject, text="plain", html="<p>html</p>"
    )


def settings_with(tmp_path: Path, **values) -> Settings:
    base = {
        "app_env": "test",
        "secret_key": SECRET_KEY,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite'}",
        "mail_outbox_dir": tmp_path / "mail",
    }
    return Settings(**{**base, **values})


# --- MAIL_URL ------------------------------------------------------------------------------------


def test_mail_url_forms_select_smtp_tls_modes_and_the_outbox(tmp_path):
    smtp = transport_for(settings_with(tmp_path, mail_url="smtp://mail.example.com"))
    assert isinstance(smtp, SMTPTransport)
    assert (smtp.host, smtp.port, smtp.tls, smtp.username) == (
        "mail.example.com",
        25,
        "opportunistic",
        None,
    )
    starttls = transport_for(
        settings_with(tmp_path, mail_url="smtp+starttls://me%40x.org:p%3Ass@mail.example.com")
    )
    assert (starttls.port, starttls.tls) == (587, "starttls")
    assert (starttls.username, starttls.password) == ("me@x.org", "p:ss")  # percent-decoded
    implicit = transport_for(settings_with(tmp_path, mail_url="smtps://u:p@mail.example.com:2465"))
    assert (implicit.port, implicit.tls) == (2465, "implicit")
    folder = transport_for(settings_with(tmp_path, mail_url=f"file://{tmp_path}/out"))
    assert folder == OutboxTransport(tmp_path / "out")
    default = transport_for(settings_with(tmp_path))  # empty MAIL_URL outside production
    assert default == OutboxTransport(tmp_path / "mail")
    assert "p:ss" not in starttls.describe() and "mail.example.com:587" in starttls.describe()


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp://", "file://relative/dir", "smtp://host:notaport"]
)
def test_bad_mail_urls_are_refused_with_a_clear_error(tmp_path, url):
    with pytest.raises(MailConfigError):
        transport_for(settings_with(tmp_path, mail_url=url))


def test_production_without_mail_url_refuses_to_start(tmp_path):
    settings = settings_with(tmp_path, app_env="production")
    with pytest.raises(MailConfigError, match="MAIL_URL is required in production"):
        transport_for(settings)


async def test_production_app_without_mail_url_does_not_start(tmp_path, sqlite_template):
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "app.sqlite")
    settings = settings_with(
        tmp_path,
        app_env="production",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}",
    )
    refused: list[BaseException] = []
    try:
        async with running(create_app(settings)):
            raise AssertionError("the app started without MAIL_URL in production")
    except* MailConfigError as group:  # the lifespan reports it inside an exception group
        refused.extend(group.exceptions)
    assert "MAIL_URL is required in production" in str(refused[0])


# --- messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr, name",
    [
        ("ann@example.com\r\nBcc: eve@evil.test", ""),
        ("ann@example.com\nBcc: eve@evil.test", ""),
        ("ann@example.com", "Ann\r\nBcc: eve@evil.test"),
        ("ann@example.com, eve@evil.test", ""),
        ('"Ann" <eve@evil.test>', ""),
        ("Ann <eve@evil.test>", ""),
        ("not-an-address", ""),
        ("ann@", ""),
    ],
)
def test_header_injection_and_display_name_tricks_in_addresses_are_refused(addr, name):
    with pytest.raises(MailAddressError):
        address(addr, name)


def test_subject_with_line_breaks_is_refused():
    with pytest.raises(MailAddressError):
        message(subject="Hello\r\nBcc: eve@evil.test")


def test_a_display_name_that_looks_like_addresses_stays_one_quoted_name():
    built = build_message(
        sender=SENDER,
        to=address("ann@example.com", 'Admin <admin@evil.test>, "Eve" eve@evil.test'),
        subject="Hi",
        text="t",
        html="<p>h</p>",
    )
    [recipient] = built["To"].addresses
    assert recipient.addr_spec == "ann@example.com"
    assert recipient.display_name == 'Admin <admin@evil.test>, "Eve" eve@evil.test'


def test_messages_are_multipart_alternative_with_date_message_id_and_auto_submitted():
    built = message()
    assert built.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in built.iter_parts()] == ["text/plain", "text/html"]
    assert built["Message-ID"].endswith("@slicestar.test>")
    assert built["Auto-Submitted"] == "auto-generated" and built["Date"]


def test_mail_from_must_be_exactly_one_address():
    assert parse_sender("Slicestar <no-reply@localhost>").addr_spec == "no-reply@localhost"
    for bad in ("a@example.com, b@example.com", "no address", "x <y@z>\r\nBcc: q@r"):
        with pytest.raises(MailAddressError):
            parse_sender(bad)


# --- transports ---------------------------------------------------------------------------------


async def test_outbox_transport_writes_whole_private_eml_files(tmp_path):
    transport = OutboxTransport(tmp_path / "out")
    await transport.send(message(subject="First"))
    await transport.send(message(subject="Second"))
    files = sorted((tmp_path / "out").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no partial files left behind
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    [second, first] = read_outbox(tmp_path / "out")
    assert (first.subject, second.subject) == ("First", "Second")
    assert first.to == "Ann <ann@example.com>" and first.text.strip() == "plain"
    assert read_outbox(tmp_path / "missing") == []


async def test_smtp_transport_delivers_to_a_real_server(tmp_path):
    with smtp_server() as (server, port):
        transport = transport_for(settings_with(tmp_path, mail_url=f"smtp://127.0.0.1:{port}"))
        await transport.send(message())
        [got] = server.wait_for(lambda m: len(m) == 1)
    assert got.rcpt_tos == ["ann@example.com"] and got.mail_from == "no-reply@slicestar.test"
    assert got.text.strip() == "plain" and "<p>html</p>" in got.html


# The test server allows AUTH without TLS (there is no certificate here); aiosmtpd warns.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_transport_logs_in_with_the_credentials_of_the_url(tmp_path):
    with smtp_server(credentials=("mailer@x.org", "s3cret:pass")) as (server, port):
        url = f"smtp://mailer%40x.org:s3cret%3Apass@127.0.0.1:{port}"
        await transport_for(settings_with(tmp_path, mail_url=url)).send(message())
        [got] = server.wait_for(lambda m: len(m) == 1)
        assert got.login == "mailer@x.org"
        wrong = f"smtp://mailer%40x.org:wrong@127.0.0.1:{port}"
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await transport_for(settings_with(tmp_path, mail_url=wrong)).send(message())


async def test_smtp_starttls_required_refuses_a_server_without_tls(tmp_path):
    with smtp_server() as (server, port):
        url = f"smtp+starttls://127.0.0.1:{port}"
        with pytest.raises(aiosmtplib.SMTPException, match=r"STARTTLS"):
            await transport_for(settings_with(tmp_path, mail_url=url)).send(message())
        assert server.messages == []  # nothing went out in clear text


# --- the delivery queue -------------------------------------------------------------------------


class FlakyTransport:
    """Fails the first ``failures`` sends, then writes to an outbox (a real folder)."""

    def __init__(self, folder: Path, failures: int) -> None:
        self.outbox = OutboxTransport(folder)
        self.failures = failures
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("down")
        await self.outbox.send(message)

    def describe(self) -> str:
        return "flaky"


async def test_failed_delivery_is_retried_with_exponential_back_off(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="slicestar.mail")
    transport = FlakyTransport(tmp_path, failures=2)
    queue = MailQueue(transport, attempts=4, base_delay=0.1)
    await queue.start()
    queue.put(message(), "greeting")
    await asyncio.wait_for(queue.join(), 10)
    await queue.stop()
    assert transport.calls == 3 and queue.sent == 1 and queue.failed == 0
    assert len(read_outbox(tmp_path)) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "slicestar.mail"]
    failures = [x for x in lines if "failed: greeting" in x]
    assert len(failures) == 2 and all("(ConnectionRefusedError)" in x for x in failures)
    assert "attempt 1 of 4" in failures[0] and "retrying in 0.1 s" in failures[0]
    assert "attempt 2 of 4" in failures[1] and "retrying in 0.2 s" in failures[1]  # doubles
    assert any(x.startswith("mail sent: greeting") for x in lines)


async def test_delivery_gives_up_after_the_last_attempt_and_logs_it(tmp_path, caplog):
    transport = FlakyTransport(tmp_path, failures=10)
    queue = MailQueue(transport, attempts=3, base_delay=0.01)
    await queue.start()
    queue.put(message(), "greeting")
    await asyncio.wait_for(queue.join(), 10)
    await queue.stop()
    assert transport.calls == 3 and queue.failed == 1
    assert "mail given up: greeting" in caplog.text and "after 3 attempt(s)" in caplog.text


async def test_shutdown_delivers_pending_and_waiting_retries_within_its_bound(tmp_path):
    transport = FlakyTransport(tmp_path, failures=1)
    queue = MailQueue(transport, attempts=4, base_delay=3600)  # the retry would wait an hour
    await queue.start()
    queue.put(message(subject="One"), "one")
    queue.put(message(subject="Two"), "two")
    await asyncio.sleep(0.1)
    await asyncio.wait_for(queue.stop(), 10)  # brings the waiting retry forward
    assert sorted(m.subject for m in read_outbox(tmp_path)) == ["One", "Two"]


async def test_shutdown_gives_up_on_a_hanging_server_after_its_bound(tmp_path, caplog):
    class Hanging:
        async def send(self, message: EmailMessage) -> None:
            await asyncio.Event().wait()

        def describe(self) -> str:
            return "hanging"

    queue = MailQueue(Hanging(), shutdown_seconds=0.2, send_timeout=3600)
    await queue.start()
    queue.put(message(), "greeting")
    await asyncio.wait_for(queue.stop(), 10)  # returns although the send never finishes
    assert "1 message(s) not delivered before shutdown" in caplog.text


# --- the app's mailer over SMTP ------------------------------------------------------------------


async def test_account_mail_reaches_a_real_smtp_server_with_both_parts_and_the_link(
    tmp_path, sqlite_template
):
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "app.sqlite")
    with smtp_server() as (server, port):
        app = create_app(
            settings_with(
                tmp_path,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}",
                app_url="https://slicestar.example.com",
                mail_url=f"smtp://127.0.0.1:{port}",
                mail_from="Slicestar <hello@slicestar.example.com>",
            )
        )
        async with running(app):
            assert mails.verify_email(app.state.mail, "ann@example.com", "Ann", "T" * 43)
            await app.state.mail.join()
        [got] = server.wait_for(lambda m: len(m) == 1)
    assert got.rcpt_tos == ["ann@example.com"]
    assert got.message["From"] == "Slicestar <hello@slicestar.example.com>"
    assert got.message["To"] == "Ann <ann@example.com>"
    assert got.message["Subject"] == "Slicestar: Verify your email address"
    link = "https://slicestar.example.com/verify-email/" + "T" * 43
    assert link in got.text and f'href="{link}"' in got.html
    assert "24 hours" in got.text and "Slicestar" in got.html
    assert "because someone created a Slicestar account" in got.text


async def test_s37_mailed_links_use_app_url_not_the_request_host(tmp_path, sqlite_template):
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "app.sqlite")
    with smtp_server() as (server, port):
        app = create_app(
            settings_with(
                tmp_path,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}",
                # http: over https the CSRF cookie is Secure, which the test client does not send
                app_url="http://slicestar.example.com",
                mail_url=f"smtp://127.0.0.1:{port}",
            )
        )
        async with running(app), make_browser(app) as browser:
            browser.headers["host"] = "evil.example.net"
            response = await post_form(
                browser,
                "/register",
                {
                    "name": "Ann",
                    "email": "ann@example.com",
                    "password": "correct horse battery staple",
                    "password_confirmation": "correct horse battery staple",
                },
            )
            assert response.status_code == 303
            await app.state.mail.join()
        [got] = server.wait_for(lambda m: len(m) == 1)
    assert "http://slicestar.example.com/verify-email/" in got.text
    assert "evil.example.net" not in got.text + got.html


async def test_an_internationalised_sign_up_address_is_mailable_over_smtp(
    tmp_path, sqlite_template
):
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "app.sqlite")
    form = {
        "name": "Jörg",
        "password": "correct horse battery staple",
        "password_confirmation": "correct horse battery staple",
    }
    with smtp_server() as (server, port):
        app = create_app(
            settings_with(
                tmp_path,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}",
                app_url="http://slicestar.example.com",
                mail_url=f"smtp://127.0.0.1:{port}",
            )
        )
        async with running(app), make_browser(app) as browser:
            refused = await post_form(
                browser, "/register", {**form, "email": "jörg@example.com"}, token_from="/register"
            )
            assert refused.status_code == 422
            assert "plain ASCII letters" in refused.text
            response = await post_form(
                browser,
                "/register",
                {**form, "email": "Jorg@Bücher.Example"},
                token_from="/register",
            )
            assert response.status_code == 303
            await app.state.mail.join()
            assert app.state.mail.queue.failed == 0
        [got] = server.wait_for(lambda m: len(m) == 1)
    assert got.rcpt_tos == ["jorg@xn--bcher-kva.example"]  # the domain in its ASCII form
    assert got.message["To"] == "Jörg <jorg@xn--bcher-kva.example>"


async def test_unreachable_smtp_server_never_fails_the_action_and_is_retried(
    tmp_path, sqlite_template, caplog
):
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "app.sqlite")
    closed = free_port()  # nothing listens here
    app: Litestar = create_app(
        settings_with(
            tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite'}",
            mail_url=f"smtp://127.0.0.1:{closed}",
            mail_retry_attempts=3,
            mail_retry_base_seconds=0.02,
        )
    )
    mail_log = logging.getLogger("slicestar.mail")
    async with running(app), make_browser(app) as browser:
        # The app's startup configures logging (dropping pytest's root handler): listen here.
        mail_log.addHandler(caplog.handler)
        caplog.set_level(logging.INFO)
        response = await post_form(
            browser,
            "/register",
            {
                "name": "Ann",
                "email": "ann@example.com",
                "password": "correct horse battery staple",
                "password_confirmation": "correct horse battery staple",
            },
        )
        assert response.status_code == 303  # the sign-up succeeded
        assert response.headers["location"] == "/register/check-email"
        await asyncio.wait_for(app.state.mail.join(), 10)
        assert app.state.mail.queue.failed == 1
    mail_log.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "slicestar.mail"]
    assert sum("failed: verify_email" in x for x in lines) == 2  # two retries …
    assert any("mail given up: verify_email" in x for x in lines)  # … then it gives up
    assert "/verify-email/" not in caplog.text  # never the link


# --- the development page -------------------------------------------------------------------------


async def test_dev_mail_page_lists_the_outbox_in_development_only(tmp_path, settings, app, client):
    assert (await client.get("/dev/mail")).status_code == 404  # APP_ENV=test
    dev_app = create_app(settings.model_copy(update={"app_env": "development"}))
    async with running(dev_app), make_browser(dev_app) as browser:
        mails.reset_password(dev_app.state.mail, "ann@example.com", "Ann", "R" * 43, by_admin=False)
        await dev_app.state.mail.join()
        page = await browser.get("/dev/mail")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "Slicestar: Reset your password" in page.text and "ann@example.com" in page.text
    assert f'href="http://testserver.local/reset-password/{"R" * 43}"' in page.text
