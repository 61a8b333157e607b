"""Two-factor authentication rules: TOTP (RFC 6238) with recovery codes (SECURITY.md S12,
S25–S31).

- The secret is 160 bits from :func:`pyotp.random_base32` (a CSPRNG), stored on the user row
  encrypted with :class:`shared.security.encryption.SecretBox` (S25). During setup the new
  secret waits on the user row with ``two_factor_enabled`` false: the login path looks only at
  ``two_factor_enabled``, so a pending secret grants and changes nothing, and a QR code that
  was scanned stays valid when the setup page is reloaded or opened on another device. Setup
  never touches an active 2FA (S26): every write is conditional on ``two_factor_enabled``.
- Codes are 6 digits for 30-second steps; only steps T-1..T+1 of the server clock count (S27).
  The last accepted step is stored and advanced by one conditional UPDATE, so a code (its step,
  or an older one) is accepted at most once (S28, RFC 6238 §5.2).
- Recovery codes: 10 codes of 25 symbols from a 32-symbol alphabet (125 bits each) drawn with
  :mod:`secrets`, stored as SHA-256 hashes and consumed by a conditional UPDATE (S30). A fast
  hash is enough here: with 125 bits of entropy no guessing attack on a leaked hash is feasible,
  unlike with passwords.
- The login challenge belongs to a pending session row (S12). Its throttling (5 attempts a
  minute and a back-off per account; from the 10th consecutive wrong code on, the pending login
  ends) lives in :mod:`features.core.auth.login_guard`, beside the sign-in budgets (S29).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth.two_factor.repository import TwoFactorRepository
from features.sessions.models import BrowserSession
from features.sessions.service import SessionService
from shared import clock
from shared.config import Settings
from shared.security.encryption import DecryptionError, SecretBox

STEP_SECONDS = 30  # RFC 6238 §4.1 X = 30
DIGITS = 6
SECRET_LENGTH = 32  # base32 symbols: 32 × 5 = 160 bits (RFC 4226 §4 R6 recommends 160)
ACCEPTED_DRIFT = 1  # steps either side of the current one (S27)

RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # 32 symbols, no i, l, o, u
RECOVERY_GROUPS = 5
RECOVERY_GROUP_LENGTH = 5  # 25 symbols × 5 bits = 125 bits ≥ 112 (S30)
RECOVERY_LOW = 2  # warn when this many or fewer are left

_PURPOSE = "two-factor-secret"
logger = logging.getLogger(__name__)


class TwoFactorError(Exception):
    """Base of the errors below; the message is fit to show."""


class AlreadyEnabled(TwoFactorError):
    """Two-factor authentication is already on (setup never replaces it, S26)."""


class NoPendingSetup(TwoFactorError):
    """There is no setup in progress to confirm."""


class NotEnabled(TwoFactorError):
    """Two-factor authentication is off."""


class InvalidCode(TwoFactorError):
    """The code is not valid now (wrong, outside T-1..T+1, or already used)."""


# --- codes -------------------------------------------------------------------------------


def time_step(when: datetime) -> int:
    """The RFC 6238 time step of ``when``: whole 30-second periods since the Unix epoch."""
    return math.floor(when.timestamp()) // STEP_SECONDS


def totp_at_step(secret: str, step: int) -> str:
    """The 6-digit code of base32 ``secret`` for time step ``step`` (RFC 6238, HMAC-SHA1)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def normalise_totp(raw: str) -> str | None:
    """``raw`` without spaces if it is exactly 6 ASCII digits, else ``None``."""
    code = raw.replace(" ", "")
    if len(code) == DIGITS and code.isascii() and code.isdigit():
        return code
    return None


def matching_steps(secret: str, code: str, now: datetime) -> list[int]:
    """The steps among T-1..T+1 (S27) whose code equals ``code``, oldest first.

    Every candidate is compared in constant time, whether or not an earlier one matched.
    """
    current = time_step(now)
    steps = range(current - ACCEPTED_DRIFT, current + ACCEPTED_DRIFT + 1)
    return [s for s in steps if hmac.compare_digest(totp_at_step(secret, s), code)]


def new_recovery_code() -> str:
    """A fresh recovery code ``xxxxx-xxxxx-xxxxx-xxxxx-xxxxx`` (125 bits from :mod:`secrets`)."""
    groups = (
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))
        for _ in range(RECOVERY_GROUPS)
    )
    return "-".join(groups)


def normalise_recovery_code(raw: str) -> str | None:
    """The canonical form of a typed recovery code, or ``None`` if it cannot be one.

    Spaces, dashes and letter case are forgiven; any other character, or a wrong length, is not.
    """
    text = "".join(c for c in raw if not c.isspace() and c != "-").lower()
    if len(text) != RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH:
        return None
    if any(c not in RECOVERY_ALPHABET for c in text):
        return None
    return text


def recovery_code_hash(normalised: str) -> str:
    """SHA-256 hex of a normalised recovery code: what the database keeps (S30)."""
    return hashlib.sha256(normalised.encode()).hexdigest()


def group_secret(secret: str) -> str:
    """The key in groups of four for typing by hand: ``ABCD EFGH …``."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TwoFactorStatus:
    """What the security page shows. ``pending``: a setup was started but not confirmed."""

    enabled: bool
    pending: bool
    confirmed_at: datetime | None
    remaining_codes: int

    @property
    def codes_low(self) -> bool:
        """True when 2FA is on and at most :data:`RECOVERY_LOW` (2) unused codes are left."""
        return self.enabled and self.remaining_codes <= RECOVERY_LOW


@dataclass(frozen=True, slots=True)
class SetupDetails:
    """What the setup page shows: the key (plain and grouped), its URI and QR code (SVG)."""

    secret: str
    grouped: str
    uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    """The outcome of one challenge attempt.

    ``outcome``: ``ok`` (signed in: ``token``/``session`` are the new session), ``wrong``,
    ``replay`` (a valid but already used code) or ``expired`` (no pending login any more).
    ``remaining`` is the number of unused recovery codes after using one.
    """

    outcome: Literal["ok", "wrong", "replay", "expired"]
    user_id: uuid.UUID | None = None
    token: str | None = None
    session: BrowserSession | None = None
    remaining: int | None = None


# --- service -----------------------------------------------------------------------------


class TwoFactorService:
    """Set up, use and remove two-factor authentication; every method commits its writes."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repo = TwoFactorRepository(session)
        self.sessions = SessionService(session, settings)
        self.box = SecretBox.from_settings(settings.encryption_key, settings.secret_key, _PURPOSE)

    async def status(self, user_id: uuid.UUID) -> TwoFactorStatus:
        """The 2FA state of ``user_id`` (read only)."""
        state = await self.repo.state(user_id)
        secret, enabled, confirmed_at = state or (None, False, None)
        remaining = await self.repo.remaining_codes(user_id) if enabled else 0
        return TwoFactorStatus(
            enabled=enabled,
            pending=bool(secret) and not enabled,
            confirmed_at=confirmed_at,
            remaining_codes=remaining,
        )

    async def begin_setup(self, user_id: uuid.UUID) -> None:
        """Draw a new 160-bit secret and keep it, encrypted, as the pending one (S25).

        Raises :class:`AlreadyEnabled` (nothing written) when 2FA is on (S26).
        """
        encrypted = self.box.encrypt(pyotp.random_base32(SECRET_LENGTH))
        if not await self.repo.set_pending_secret(user_id, encrypted, clock.now()):
            await self.session.rollback()
            raise AlreadyEnabled("Two-factor authentication is already on.")
        await self.session.commit()

    async def setup_details(self, user_id: uuid.UUID, account: str, issuer: str) -> SetupDetails:
        """The pending secret as key, ``otpauth://`` URI and QR code for ``account``.

        Raises :class:`AlreadyEnabled` when 2FA is on (the active secret is never shown again)
        and :class:`NoPendingSetup` when no setup was started.
        """
        state = await self.repo.state(user_id)
        if state is not None and state[1]:
            raise AlreadyEnabled("Two-factor authentication is already on.")
        if state is None or not state[0]:
            raise NoPendingSetup("Start the setup first.")
        secret = self._decrypt(state[0])
        uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)
        import segno  # QR codes are drawn only here: not loaded when a worker starts (1 MiB)

        svg = segno.make(uri, error="m").svg_inline(
            scale=5, dark="#000", light="#fff", border=4, title="QR code", svgclass="qr-code"
        )
        return SetupDetails(secret=secret, grouped=group_secret(secret), uri=uri, qr_svg=svg)

    async def confirm_setup(self, user_id: uuid.UUID, code: str) -> list[str]:
        """Turn 2FA on when ``code`` (normalised, 6 digits) is valid for the pending secret
        (S26); returns the 10 new recovery codes in plain text, shown once (S30).

        Raises :class:`AlreadyEnabled`, :class:`NoPendingSetup` or :class:`InvalidCode`
        (nothing written).
        """
        state = await self.repo.state(user_id)
        if state is not None and state[1]:
            raise AlreadyEnabled("Two-factor authentication is already on.")
        if state is None or not state[0]:
            raise NoPendingSetup("Start the setup first.")
        encrypted = state[0]
        steps = matching_steps(self._decrypt(encrypted), code, clock.now())
        if not steps:
            raise InvalidCode("That code is not valid. Check the time on your device and retry.")
        if not await self.repo.enable(user_id, encrypted, steps[-1], clock.now()):
            await self.session.rollback()
            raise AlreadyEnabled("Two-factor authentication is already on.")
        codes = await self._new_codes(user_id)
        await self.session.commit()
        return codes

    async def regenerate_codes(self, user_id: uuid.UUID) -> list[str]:
        """Replace every recovery code with 10 new ones (old ones die at once, S30).

        Raises :class:`NotEnabled` when 2FA is off.
        """
        state = await self.repo.state(user_id)
        if state is None or not state[1]:
            raise NotEnabled("Two-factor authentication is off.")
        codes = await self._new_codes(user_id)
        await self.session.commit()
        return codes

    async def disable(self, user_id: uuid.UUID) -> bool:
        """Turn 2FA off; the secret and every recovery code are deleted (S31). True if it was
        on (or a setup was pending)."""
        changed = await self.repo.disable(user_id, clock.now())
        await self.session.commit()
        return changed

    async def verify_totp(self, user_id: uuid.UUID, code: str) -> Literal["ok", "wrong", "replay"]:
        """Check a normalised 6-digit ``code`` for ``user_id`` and consume its step (S27, S28).

        ``ok`` once per step; ``replay`` for a code that is valid now but whose step (or a later
        one) was already accepted; ``wrong`` otherwise (also when 2FA is off). Commits nothing:
        the caller's transaction decides.
        """
        state = await self.repo.state(user_id)
        if state is None or not state[1] or not state[0]:
            return "wrong"
        try:
            secret = self.box.decrypt(state[0])
        except DecryptionError:
            # A changed SECRET_KEY/ENCRYPTION_KEY: codes cannot be checked, recovery codes
            # (hashes, no key involved) still sign the user in.
            logger.error("two-factor secret of user %s cannot be decrypted", user_id)
            return "wrong"
        steps = matching_steps(secret, code, clock.now())
        for step in steps:
            if await self.repo.advance_step(user_id, step):
                return "ok"
        return "replay" if steps else "wrong"

    async def use_recovery_code(self, user_id: uuid.UUID, normalised: str) -> int | None:
        """Consume one recovery code; returns how many are left, or ``None`` if the code is not
        an unused code of ``user_id`` (S30). Commits nothing."""
        if not await self.repo.use_code(user_id, recovery_code_hash(normalised), clock.now()):
            return None
        return await self.repo.remaining_codes(user_id)

    async def challenge(
        self,
        pending_id: uuid.UUID,
        *,
        totp: str | None = None,
        recovery: str | None = None,
        ip_address: str | None,
        user_agent: str | None,
    ) -> ChallengeResult:
        """One attempt at the login challenge of the pending session ``pending_id`` (S12).

        Give a normalised ``totp`` code or a normalised ``recovery`` code. The pending row is
        locked for the attempt. On success it is deleted and a new session starts with a new
        id and the "remember me" choice of the password step (S12). A wrong code changes
        nothing here: the caller counts it (``login_guard``, S29) before and after the attempt.
        """
        row = await self.sessions.get_for_update(pending_id)
        if row is None or row.pending_2fa_until is None or clock.now() > row.pending_2fa_until:
            await self.session.rollback()
            return ChallengeResult(outcome="expired")
        user_id = row.user_id

        outcome: Literal["ok", "wrong", "replay"]
        remaining: int | None = None
        if totp is not None:
            outcome = await self.verify_totp(user_id, totp)
        else:
            remaining = await self.use_recovery_code(user_id, recovery or "")
            outcome = "ok" if remaining is not None else "wrong"

        if outcome != "ok":
            await self.session.rollback()
            return ChallengeResult(outcome=outcome, user_id=user_id)
        remember = row.remember
        await self.sessions.end(row.id)
        token, new_row = await self.sessions.start(
            user_id,
            remember=remember,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        await self.session.commit()
        return ChallengeResult(
            outcome="ok", user_id=user_id, token=token, session=new_row, remaining=remaining
        )

    async def end_pending(self, pending_id: uuid.UUID) -> None:
        """End the pending login ``pending_id`` (cancelled, or too many wrong codes) and commit."""
        await self.sessions.end(pending_id)
        await self.session.commit()

    async def _new_codes(self, user_id: uuid.UUID) -> list[str]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        hashes = [recovery_code_hash(normalise_recovery_code(c) or "") for c in codes]
        await self.repo.replace_codes(user_id, hashes, clock.now())
        return codes

    def _decrypt(self, encrypted: str) -> str:
        try:
            return self.box.decrypt(encrypted)
        except DecryptionError as exc:
            raise TwoFactorError(
                "The two-factor key cannot be read with the configured ENCRYPTION_KEY."
            ) from exc
