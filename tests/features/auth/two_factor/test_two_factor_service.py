"""Two-factor rules through the service, with separate database sessions and a frozen clock
(SECURITY.md S25–S28, S30)."""

from __future__ import annotations

import asyncio
import base64
import re
import string
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, text

from features.core.auth.two_factor.models import RecoveryCode
from features.core.auth.two_factor.service import (
    RECOVERY_ALPHABET,
    AlreadyEnabled,
    InvalidCode,
    NoPendingSetup,
    NotEnabled,
    TwoFactorService,
    matching_steps,
    new_recovery_code,
    normalise_recovery_code,
    normalise_totp,
    recovery_code_hash,
    time_step,
    totp_at_step,
)
from features.users.models import User
from shared import clock
from shared.security.encryption import SecretBox


@pytest.fixture
async def db(app, client):
    """The app's database (the test client runs the app's lifespan, which creates it)."""
    return app.state.db


async def new_user(db, email: str = "ann@example.com") -> User:
    async with db.writer() as session:
        user = User(name="Ann", email=email, password_hash="unused")
        session.add(user)
        await session.commit()
        return user


async def enabled_user(db, settings) -> tuple[User, str, list[str]]:
    """A user with 2FA on, confirmed with the code of the previous step."""
    user = await new_user(db)
    async with db.writer() as session:
        service = TwoFactorService(session, settings)
        await service.begin_setup(user.id)
        details = await service.setup_details(user.id, user.email, "Slicestar")
        codes = await service.confirm_setup(
            user.id, totp_at_step(details.secret, time_step(clock.now()) - 1)
        )
    return user, details.secret, codes


async def verify(db, settings, user_id, code) -> str:
    async with db.writer() as session:
        outcome = await TwoFactorService(session, settings).verify_totp(user_id, code)
        await session.commit()
        return outcome


async def test_s25_secret_has_160_bits_and_is_stored_encrypted(db, settings, frozen):
    user = await new_user(db)
    async with db.writer() as session:
        service = TwoFactorService(session, settings)
        await service.begin_setup(user.id)
        details = await service.setup_details(user.id, user.email, "Slicestar")
    assert len(details.secret) == 32 and set(details.secret) <= set(
        string.ascii_uppercase + "234567"
    )
    assert len(base64.b32decode(details.secret)) * 8 == 160
    assert details.uri.startswith("otpauth://totp/Slicestar:ann%40example.com?secret=")
    async with db.reader() as session:
        stored = await session.scalar(select(User.two_factor_secret).where(User.id == user.id))
    assert details.secret not in stored
    assert (
        SecretBox.from_settings("", settings.secret_key, "two-factor-secret").decrypt(stored)
        == details.secret
    )
    # Another deployment's key cannot read it.
    other = settings.model_copy(update={"secret_key": "another-key-" + "z" * 40})
    async with db.reader() as session:
        with pytest.raises(Exception, match="cannot be read"):
            await TwoFactorService(session, other).setup_details(user.id, user.email, "x")


async def test_s26_setup_is_refused_while_two_factor_is_on(db, settings, frozen):
    user, _, _ = await enabled_user(db, settings)
    async with db.reader() as session:
        before = await session.scalar(select(User.two_factor_secret).where(User.id == user.id))
    async with db.writer() as session:
        service = TwoFactorService(session, settings)
        with pytest.raises(AlreadyEnabled):
            await service.begin_setup(user.id)
        with pytest.raises(AlreadyEnabled):
            await service.setup_details(user.id, user.email, "x")
        with pytest.raises(AlreadyEnabled):
            await service.confirm_setup(user.id, "123456")
    async with db.reader() as session:
        row = (
            await session.execute(
                select(User.two_factor_secret, User.two_factor_enabled).where(User.id == user.id)
            )
        ).one()
    assert row == (before, True)


async def test_s26_confirming_needs_a_started_setup_and_a_valid_code(db, settings, frozen):
    user = await new_user(db)
    async with db.writer() as session:
        service = TwoFactorService(session, settings)
        with pytest.raises(NoPendingSetup):
            await service.confirm_setup(user.id, "123456")
        with pytest.raises(NotEnabled):
            await service.regenerate_codes(user.id)
        await service.begin_setup(user.id)
        details = await service.setup_details(user.id, user.email, "x")
        with pytest.raises(InvalidCode):
            await service.confirm_setup(
                user.id, totp_at_step(details.secret, time_step(clock.now()) + 2)
            )
        assert not (await service.status(user.id)).enabled
        assert (await service.status(user.id)).pending


async def test_s27_window_edges_with_a_frozen_clock(frozen):
    secret = pyotp.random_base32(32)
    step = time_step(frozen())
    frozen.set(
        frozen().replace(microsecond=0) - timedelta(seconds=frozen().second % 30)
    )  # step start
    assert time_step(clock.now()) == step
    assert matching_steps(secret, totp_at_step(secret, step - 1), clock.now()) == [step - 1]
    assert matching_steps(secret, totp_at_step(secret, step + 1), clock.now()) == [step + 1]
    assert matching_steps(secret, totp_at_step(secret, step - 2), clock.now()) == []
    assert matching_steps(secret, totp_at_step(secret, step + 2), clock.now()) == []
    frozen.advance(seconds=29.999)  # the last instant of step T: T-1 still accepted
    assert matching_steps(secret, totp_at_step(secret, step - 1), clock.now()) == [step - 1]
    frozen.advance(seconds=0.001)  # step T+1 begins: T-1 is now two steps old
    assert matching_steps(secret, totp_at_step(secret, step - 1), clock.now()) == []
    assert matching_steps(secret, totp_at_step(secret, step + 2), clock.now()) == [step + 2]
    assert totp_at_step(secret, step) == pyotp.TOTP(secret).at(step * 30)  # RFC 6238 codes


async def test_s28_a_step_is_accepted_once_and_older_steps_after_it_never(db, settings, frozen):
    user, secret, _ = await enabled_user(db, settings)  # step T-1 used by the confirmation
    step = time_step(clock.now())
    assert await verify(db, settings, user.id, totp_at_step(secret, step - 1)) == "replay"
    assert await verify(db, settings, user.id, totp_at_step(secret, step + 1)) == "ok"
    assert await verify(db, settings, user.id, totp_at_step(secret, step + 1)) == "replay"
    assert await verify(db, settings, user.id, totp_at_step(secret, step)) == "replay"
    frozen.advance(seconds=60)
    assert await verify(db, settings, user.id, totp_at_step(secret, step + 2)) == "ok"
    async with db.reader() as session:
        assert await session.scalar(select(User.two_factor_last_step)) == step + 2


async def test_s28_twenty_concurrent_submissions_of_one_code_exactly_one_success(
    db, settings, frozen
):
    user, secret, _ = await enabled_user(db, settings)
    code = totp_at_step(secret, time_step(clock.now()))
    outcomes = await asyncio.gather(*(verify(db, settings, user.id, code) for _ in range(20)))
    assert sorted(outcomes) == ["ok"] + ["replay"] * 19


async def test_s30_recovery_codes_have_112_bits_or_more_and_are_stored_hashed(db, settings, frozen):
    _user, _, codes = await enabled_user(db, settings)
    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[0-9a-z]{5}(-[0-9a-z]{5}){4}", code)
        assert set(code.replace("-", "")) <= set(RECOVERY_ALPHABET)
    assert len(RECOVERY_ALPHABET) == len(set(RECOVERY_ALPHABET)) == 32
    assert 25 * 5 >= 112  # 25 symbols of 5 bits each
    async with db.reader() as session:
        rows = (await session.scalars(select(RecoveryCode))).all()
        dump = " ".join(
            str(v)
            for v in (await session.execute(text("select * from two_factor_recovery_codes"))).all()
        )
    assert {r.code_hash for r in rows} == {recovery_code_hash(c.replace("-", "")) for c in codes}
    assert not any(c in dump or c.replace("-", "") in dump for c in codes)
    assert len({new_recovery_code() for _ in range(1000)}) == 1000


async def test_s30_a_recovery_code_is_single_use_even_under_twenty_concurrent_uses(
    db, settings, frozen
):
    user, _, codes = await enabled_user(db, settings)

    async def use(code: str) -> int | None:
        async with db.writer() as session:
            left = await TwoFactorService(session, settings).use_recovery_code(user.id, code)
            await session.commit()
            return left

    results = await asyncio.gather(*(use(normalise_recovery_code(codes[0])) for _ in range(20)))
    assert sorted(results, key=lambda r: r is None) == [9] + [None] * 19
    assert await use(normalise_recovery_code(codes[1])) == 8


async def test_s30_regenerating_invalidates_every_old_code(db, settings, frozen):
    user, _, old = await enabled_user(db, settings)
    async with db.writer() as session:
        service = TwoFactorService(session, settings)
        new = await service.regenerate_codes(user.id)
        assert await service.use_recovery_code(user.id, normalise_recovery_code(old[0])) is None
        assert await service.use_recovery_code(user.id, normalise_recovery_code(new[0])) == 9
        await session.commit()


async def test_s31_disable_deletes_secret_and_codes(db, settings, frozen):
    user, _, _ = await enabled_user(db, settings)
    async with db.writer() as session:
        assert await TwoFactorService(session, settings).disable(user.id)
    async with db.reader() as session:
        row = (
            await session.execute(
                select(
                    User.two_factor_secret,
                    User.two_factor_enabled,
                    User.two_factor_confirmed_at,
                    User.two_factor_last_step,
                )
            )
        ).one()
        assert tuple(row) == (None, False, None, None)
        assert (await session.scalars(select(RecoveryCode))).all() == []


def test_code_normalisation_accepts_only_spaces_dashes_and_case():
    assert normalise_totp("123456") == "123456"
    assert normalise_totp("123 456") == "123456"
    for bad in ("12345", "1234567", "12a456", "١٢٣٤٥٦", "123-456", "", "      "):
        assert normalise_totp(bad) is None, bad
    code = "abcde-fghjk-mnpqr-stvwx-yz012"
    assert normalise_recovery_code(code) == code.replace("-", "")
    for typed in (
        code.upper(),
        f"  {code}  ",
        code.replace("-", " "),
        code.replace("-", ""),
        "ABCDE fghjk-MNPQR\tstvwx - yz012",
    ):
        assert normalise_recovery_code(typed) == code.replace("-", ""), typed
    for bad in (
        "abcde-fghjk-mnpqr-stvwx-yz01",
        "abcde-fghjk-mnpqr-stvwx-yz0123",
        "abcde_fghjk_mnpqr_stvwx_yz012",
        "ibcde-fghjk-mnpqr-stvwx-yz012",
        "abcde.fghjk.mnpqr.stvwx.yz012",
        "ábcde-fghjk-mnpqr-stvwx-yz012",
    ):
        assert normalise_recovery_code(bad) is None, bad
