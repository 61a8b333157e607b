"""Throttling (SECURITY.md S9): login budgets, account back-off, password confirmation,
client IP behind proxies, the database store across processes and the Redis store."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis.asyncio
from sqlalchemy import func, select

from app import create_app
from shared import clock
from shared.clock import FrozenClock, use_clock
from shared.config import ROOT_DIR
from shared.database import Database
from shared.security import throttle
from shared.security.throttle import throttle_counters as counters
from shared.web.client import resolve_client_ip
from tests.accounts import create_account
from tests.conftest import SECRET_KEY, make_browser, running
from tests.support import DEFAULT_PASSWORD, csrf, login, post_form, register

WRONG = "wrong password 123"


async def test_s9_sixth_failed_login_within_a_minute_is_429_with_retry_after(client):
    await register(client, "ann@example.com")
    await post_form(client, "/logout", {})
    clock = FrozenClock()
    with use_clock(clock):
        for _ in range(5):
            assert (await login(client, "Ann@Example.com ", WRONG)).status_code == 422
        refused = await login(client, "ann@example.com", DEFAULT_PASSWORD)  # even the right one
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "60"
        assert (
            "Too many attempts" in refused.text and "text/html" in refused.headers["content-type"]
        )
        clock.advance(seconds=59)
        assert (await login(client, "ann@example.com")).status_code == 429
        clock.advance(seconds=1)
        assert (await login(client, "ann@example.com")).status_code == 303


async def test_s9_each_email_and_ip_pair_has_its_own_budget(client, browser_factory):
    await register(client, "ann@example.com")
    await post_form(client, "/logout", {})
    with use_clock(FrozenClock()):
        for _ in range(5):
            await login(client, "ann@example.com", WRONG)
        assert (await login(client, "ann@example.com", WRONG)).status_code == 429
        assert (await login(client, "bob@example.com", WRONG)).status_code == 422
        elsewhere = browser_factory()  # another client IP port, same 127.0.0.1 address
        assert (await login(elsewhere, "ann@example.com", WRONG)).status_code == 429


async def test_s9_account_backoff_grows_with_consecutive_failures_and_resets_on_success(app):
    async with running(app):
        state = app.state
        clock = FrozenClock()
        with use_clock(clock):
            for n in range(1, 6):  # five free failures
                assert await throttle.backoff_acquire(state, "login_account", "ann") is None
                assert await throttle.backoff_fail(state, "login_account", "ann") == n
            waits = []
            for _ in range(4):
                waits.append(await throttle.backoff_check(state, "login_account", "ann"))
                clock.advance(seconds=waits[-1])
                assert await throttle.backoff_acquire(state, "login_account", "ann") is None
                await throttle.backoff_fail(state, "login_account", "ann")
            assert waits == [1, 2, 4, 8]
            assert await throttle.backoff_acquire(state, "login_account", "ann") == 16
            clock.advance(seconds=16)
            await throttle.backoff_reset(state, "login_account", "ann")
            assert await throttle.backoff_acquire(state, "login_account", "ann") is None
            assert await throttle.backoff_fail(state, "login_account", "ann") == 1
            assert await throttle.backoff_check(state, "login_account", "ann") is None
    assert throttle.backoff_delay(100) == throttle.BACKOFF_CAP  # capped, never permanent


async def test_s9_backoff_lets_exactly_one_of_concurrent_attempts_through_per_wait(app):
    async with running(app):
        state = app.state
        with use_clock(FrozenClock()):
            for _ in range(5):
                await throttle.backoff_acquire(state, "login_account", "ann")
            # Five failures are in flight or done: of 20 racers exactly one takes the slot.
            results = await asyncio.gather(
                *(throttle.backoff_acquire(state, "login_account", "ann") for _ in range(20))
            )
            assert results.count(None) == 1
            assert all(r is not None and r >= 1 for r in results if r is not None)


async def test_s9_concurrent_wrong_passwords_for_one_email_and_ip_get_exactly_the_budget(app):
    async with running(app), make_browser(app) as browser:
        await create_account(app.state.db, "ann@example.com")
        token = await csrf(browser, "/login")
        data = {"email": "ann@example.com", "password": WRONG, "_csrf_token": token}
        with use_clock(FrozenClock()):
            responses = await asyncio.gather(
                *(browser.post("/login", data=data) for _ in range(20))
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [422] * 5 + [429] * 15
            assert all(r.headers["retry-after"] == "60" for r in responses if r.status_code == 429)
            # The budget is spent: even the right password waits.
            assert (await login(browser, "ann@example.com")).status_code == 429


async def test_s9_concurrent_wrong_confirmations_get_exactly_the_budget(client, app):
    await create_account(app.state.db, "ann@example.com")
    assert (await login(client, "ann@example.com")).status_code == 303
    token = await csrf(client, "/confirm-password")
    data = {"password": WRONG, "next": "/settings", "_csrf_token": token}
    with use_clock(FrozenClock()):
        responses = await asyncio.gather(
            *(client.post("/confirm-password", data=data) for _ in range(20))
        )
        assert sorted(r.status_code for r in responses) == [422] * 5 + [429] * 15
        right = await post_form(client, "/confirm-password", {"password": DEFAULT_PASSWORD})
        assert right.status_code == 429


async def test_s9_account_backoff_holds_across_client_ips(client, app):
    await register(client, "ann@example.com")
    await post_form(client, "/logout", {})
    with use_clock(FrozenClock()):
        for n in range(5):  # 5 failures from five different addresses: no IP budget is used up
            transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 50100))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver.local"
            ) as browser:
                assert (await login(browser, "ann@example.com", WRONG)).status_code == 422
        response = await login(client, "ann@example.com")
        assert response.status_code == 429 and response.headers["retry-after"] == "1"


async def test_s9_password_confirmation_has_its_own_budget(client):
    await register(client, "ann@example.com")
    with use_clock(FrozenClock()):
        for _ in range(5):
            response = await post_form(client, "/confirm-password", {"password": WRONG})
            assert response.status_code == 422
        response = await post_form(client, "/confirm-password", {"password": DEFAULT_PASSWORD})
        assert response.status_code == 429 and int(response.headers["retry-after"]) <= 60
        assert (await client.get("/dashboard")).status_code == 200  # still signed in


def test_s9_client_ip_ignores_forwarded_for_unless_the_peer_is_a_trusted_proxy():
    spoof = ["1.2.3.4"]
    assert resolve_client_ip("203.0.113.9", spoof, []) == "203.0.113.9"
    assert resolve_client_ip("203.0.113.9", spoof, ["10.0.0.0/8"]) == "203.0.113.9"
    trusted = ["10.0.0.0/8", "127.0.0.1"]
    assert resolve_client_ip("10.0.0.2", ["203.0.113.7"], trusted) == "203.0.113.7"
    # The client prepends a forged hop; the right-most untrusted hop is the real client.
    chain = ["6.6.6.6, 203.0.113.7, 10.0.0.3"]
    assert resolve_client_ip("10.0.0.2", chain, trusted) == "203.0.113.7"
    assert resolve_client_ip("10.0.0.2", ["6.6.6.6", "203.0.113.7"], trusted) == "203.0.113.7"
    assert resolve_client_ip("10.0.0.2", ["garbage"], trusted) == "10.0.0.2"
    assert resolve_client_ip("10.0.0.2", [], trusted) == "10.0.0.2"
    assert resolve_client_ip("::ffff:10.0.0.2", ["2001:db8::1"], trusted) == "2001:db8::1"


async def test_s9_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(client, app):
    await register(client, "ann@example.com")
    await post_form(client, "/logout", {})
    with use_clock(FrozenClock()):
        for n in range(5):
            client.headers["x-forwarded-for"] = f"192.0.2.{n}"
            await login(client, "ann@example.com", WRONG)
        client.headers["x-forwarded-for"] = "192.0.2.200"
        assert (await login(client, "ann@example.com", WRONG)).status_code == 429


async def test_s9_forwarded_for_from_a_trusted_proxy_names_the_client(settings):
    settings.trusted_proxies = ["127.0.0.1"]
    app = create_app(settings)
    async with running(app), make_browser(app) as browser:
        await register(browser, "ann@example.com")
        await post_form(browser, "/logout", {})
        clock = FrozenClock()
        with use_clock(clock):
            browser.headers["x-forwarded-for"] = "192.0.2.10"
            for _ in range(5):
                await login(browser, "ann@example.com", WRONG)
            assert (await login(browser, "ann@example.com", WRONG)).status_code == 429
            clock.advance(seconds=1)  # past the account back-off; the IP budget still holds
            browser.headers["x-forwarded-for"] = "192.0.2.10, 127.0.0.1"  # proxy chain
            assert (await login(browser, "ann@example.com", WRONG)).status_code == 429
            browser.headers["x-forwarded-for"] = "192.0.2.11"
            assert (await login(browser, "ann@example.com", WRONG)).status_code == 422


# ---- the database store shared by two server processes ----


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_servers(sqlite_template: Path, tmp_path: Path) -> Iterator[list[str]]:
    """Two uvicorn processes serving the app on one SQLite file."""
    db_path = tmp_path / "shared.sqlite"
    shutil.copyfile(sqlite_template, db_path)
    processes, urls = [], []
    for n in range(2):
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "APP_ENV": "test",
            "APP_URL": base_url,
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
            "REDIS_URL": "",
        }
        log = (tmp_path / f"server{n}.log").open("w")
        processes.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "uvicorn", "app:create_app", "--factory"),
                    *("--app-dir", "src", "--host", "127.0.0.1", "--port", str(port)),
                    *("--no-access-log", "--no-proxy-headers"),
                ],
                cwd=ROOT_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(base_url)
    deadline = time.monotonic() + 30
    try:
        for url, process in zip(urls, processes, strict=True):
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "server failed"
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_s9_counters_hold_across_two_server_processes(two_servers):
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first) as a, httpx.AsyncClient(base_url=second) as b:
        await register(a, "ann@example.com")
        statuses = []
        for n in range(5):
            browser = a if n % 2 else b
            token = await csrf(browser, "/login")
            response = await browser.post(
                "/login",
                data={"email": "ann@example.com", "password": WRONG, "_csrf_token": token},
                headers={"Origin": str(browser.base_url).rstrip("/")},
            )
            statuses.append(response.status_code)
        assert statuses == [422] * 5
        for browser in (a, b):
            token = await csrf(browser, "/login")
            response = await browser.post(
                "/login",
                data={"email": "ann@example.com", "password": WRONG, "_csrf_token": token},
            )
            assert response.status_code == 429
            assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_s9_concurrent_wrong_passwords_over_two_processes_get_exactly_the_budget(
    two_servers, tmp_path
):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite'}")
    try:
        await create_account(db, "ann@example.com")
    finally:
        await db.dispose()
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first) as a, httpx.AsyncClient(base_url=second) as b:
        tokens = {a: await csrf(a, "/login"), b: await csrf(b, "/login")}

        def post(browser: httpx.AsyncClient) -> Any:
            data = {"email": "ann@example.com", "password": WRONG, "_csrf_token": tokens[browser]}
            return browser.post("/login", data=data)

        responses = await asyncio.gather(*(post(a if n % 2 else b) for n in range(20)))
    assert sorted(r.status_code for r in responses) == [422] * 5 + [429] * 15


# ---- the Redis store ----


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
async def test_s9_redis_store_counts_and_expires_like_the_database_store():
    prefix = f"slicestar-test-{os.getpid()}-{time.monotonic_ns()}:"
    store = throttle.RedisThrottleStore("redis://127.0.0.1:6379/0", prefix=prefix)
    state = SimpleNamespace(throttle_store=store, get=lambda name: store)
    try:
        for _ in range(5):
            assert await throttle.hit(state, "login", "ann|10.0.0.1") is None
        retry = await throttle.check(state, "login", "ann|10.0.0.1")
        assert retry is not None and 1 <= retry <= 60
        assert 1 <= (await throttle.hit(state, "login", "ann|10.0.0.1")) <= 60
        assert await throttle.check(state, "login", "bob|10.0.0.1") is None
        await throttle.reset(state, "login", "ann|10.0.0.1")
        assert await throttle.check(state, "login", "ann|10.0.0.1") is None
        for _ in range(5):
            assert await throttle.backoff_acquire(state, "login_account", "ann") is None
            await throttle.backoff_fail(state, "login_account", "ann")
        assert await throttle.backoff_check(state, "login_account", "ann") == 1
        racers = [throttle.backoff_acquire(state, "login_account", "bob") for _ in range(20)]
        for _ in range(5):
            await throttle.backoff_acquire(state, "login_account", "bob")
        assert (await asyncio.gather(*racers)).count(None) == 1  # one slot, atomically
        await throttle.backoff_reset(state, "login_account", "ann")
        assert await throttle.backoff_check(state, "login_account", "ann") is None
        bucket = await store.hit("short", 1, throttle.clock.now())
        assert bucket.count == 1
        await asyncio.sleep(1.1)  # Redis expires the key on its own clock
        assert await store.peek("short", throttle.clock.now()) is None
    finally:
        client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = await client.keys(prefix + "*")
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await store.close()


async def test_redis_url_switches_the_store(settings):
    settings.redis_url = "redis://127.0.0.1:6379/0"
    app = create_app(settings)
    async with running(app):
        store = throttle.store_for(app.state)
        assert isinstance(store, throttle.RedisThrottleStore)
        await store.close()
    settings.redis_url = ""
    app = create_app(settings)
    async with running(app):
        assert isinstance(throttle.store_for(app.state), throttle.DatabaseThrottleStore)


def test_s9_trusted_proxies_setting_accepts_a_list_or_commas_and_refuses_garbage(monkeypatch):
    from shared.config import Settings

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    assert Settings(secret_key=SECRET_KEY).trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    monkeypatch.setenv("TRUSTED_PROXIES", '["192.0.2.1"]')
    assert Settings(secret_key=SECRET_KEY).trusted_proxies == ["192.0.2.1"]
    monkeypatch.setenv("TRUSTED_PROXIES", "not-an-ip")
    with pytest.raises(ValueError):
        Settings(secret_key=SECRET_KEY)


async def test_expired_throttle_counters_are_pruned(app):
    async with running(app):
        clock = FrozenClock()
        with use_clock(clock):
            await throttle.hit(app.state, "login", "a")
            await throttle.hit(app.state, "login", "b", window=3600)
            clock.advance(seconds=61)
            assert await throttle.prune(app.state) == 1
            assert await throttle.check(app.state, "login", "b", limit=1) is not None


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
async def test_s9_sign_in_budget_holds_through_the_app_with_redis_url(settings):
    settings.redis_url = "redis://127.0.0.1:6379/0"
    app = create_app(settings)
    run = uuid.uuid4().hex[:12]  # this run's own accounts, so its own counter keys
    emails = [f"ann-{run}@example.com", f"bob-{run}@example.com"]
    async with running(app), make_browser(app) as browser:
        store = throttle.store_for(app.state)
        assert isinstance(store, throttle.RedisThrottleStore)
        try:
            for email in emails:
                await create_account(app.state.db, email)
            with use_clock(FrozenClock()):
                for _ in range(5):
                    assert (await login(browser, emails[0], WRONG)).status_code == 422
                refused = await login(browser, emails[0])  # even the right password
                assert refused.status_code == 429
                assert 1 <= int(refused.headers["retry-after"]) <= 60
                token = await csrf(browser, "/login")
                data = {"email": emails[1], "password": WRONG, "_csrf_token": token}
                responses = await asyncio.gather(
                    *(browser.post("/login", data=data) for _ in range(20))
                )
                assert sorted(r.status_code for r in responses) == [422] * 5 + [429] * 15
            key = throttle._key("w", "login", f"{emails[0]}|127.0.0.1")
            assert int(await store.redis.get(store.prefix + key)) == 6  # counted in Redis …
            async with app.state.db.reader() as session:  # … and not in the database
                assert await session.scalar(select(func.count()).select_from(counters)) == 0
        finally:
            names = [
                throttle._key(kind, name, key)
                for email in emails
                for kind, name, key in (
                    ("w", "login", f"{email}|127.0.0.1"),
                    ("b", "login_account", email),
                    ("l", "login_account", email),
                )
            ]
            await store.redis.delete(*(store.prefix + n for n in names))
            await store.close()


async def test_s9_reset_all_clears_budgets_and_backoffs_in_one_store_call(app):
    # What a successful sign-in resets (login budget + account back-off) goes in one call.
    async with running(app):
        state = app.state
        for _ in range(5):
            await throttle.hit(state, "login", "ann|10.0.0.1")
        assert await throttle.hit(state, "login", "ann|10.0.0.1") is not None
        for _ in range(6):
            await throttle.backoff_acquire(state, "login_account", "ann")
            await throttle.backoff_fail(state, "login_account", "ann")
        assert await throttle.backoff_check(state, "login_account", "ann") is not None
        await throttle.hit(state, "login", "bob|10.0.0.1")
        store = throttle.store_for(state)
        real, calls = store.clear, []

        async def counting(*keys):
            calls.append(keys)
            await real(*keys)

        store.clear = counting
        try:
            await throttle.reset_all(
                state,
                budgets=(("login", "ann|10.0.0.1"),),
                backoffs=(("login_account", "ann"),),
            )
        finally:
            store.clear = real
        assert len(calls) == 1
        assert await throttle.check(state, "login", "ann|10.0.0.1") is None
        assert await throttle.backoff_check(state, "login_account", "ann") is None
        assert await throttle.backoff_acquire(state, "login_account", "ann") is None
        assert await throttle.backoff_fail(state, "login_account", "ann") == 1  # streak restarted
        # Other keys keep their counts.
        for _ in range(4):
            await throttle.hit(state, "login", "bob|10.0.0.1")
        assert await throttle.hit(state, "login", "bob|10.0.0.1") is not None


async def test_s9_a_sign_in_attempt_counts_budget_and_backoff_in_one_store_transaction(app):
    # hit_then_backoff = hit, then backoff_acquire if the budget allows, in one transaction.
    async with running(app):
        state = app.state
        store = throttle.store_for(state)
        opened, standalone = [], []
        real_transaction, real_hit, real_peek = store.transaction, store.hit, store.peek

        def counting_transaction():
            opened.append(1)
            return real_transaction()

        async def standalone_hit(*args):
            standalone.append("hit")
            return await real_hit(*args)

        async def standalone_peek(*args):
            standalone.append("peek")
            return await real_peek(*args)

        store.transaction, store.hit, store.peek = (
            counting_transaction,
            standalone_hit,
            standalone_peek,
        )
        streak_key = throttle._key("b", "login_account", "ann")
        try:
            with use_clock(FrozenClock()):
                attempt = ("login", "ann|10.0.0.1"), ("login_account", "ann")
                for _ in range(5):
                    assert await throttle.hit_then_backoff(state, *attempt) is None
                # The sixth in the window is refused by the budget; the streak is not counted.
                assert await throttle.hit_then_backoff(state, *attempt) == 60
                assert len(opened) == 6 and standalone == []
                assert (await real_peek(streak_key, clock.now())).count == 5
                # Those five attempts failed: the account's back-off now refuses the next one,
                # from any IP, without counting it in the streak.
                assert await throttle.backoff_fail(state, "login_account", "ann") == 5
                ip = ("login", "ann|10.0.0.2"), ("login_account", "ann")
                before = len(opened)
                assert await throttle.hit_then_backoff(state, *ip) == 1
                assert len(opened) == before + 1
                window = throttle._key("w", "login", "ann|10.0.0.2")
                assert (await real_peek(window, clock.now())).count == 1  # counted all the same
        finally:
            store.transaction, store.hit, store.peek = real_transaction, real_hit, real_peek
