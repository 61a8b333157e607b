"""Two-factor pages (HTTP only): Settings → Security, and the login challenge.

Rules live in :mod:`features.core.auth.two_factor.service`. Every sensitive settings action
needs a password confirmed within 15 minutes (S20, S31). The challenge routes are public but
serve only a browser with a pending login (S12).
"""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.auth import login_guard
from features.core.auth.service import requires_recent_password
from features.core.auth.two_factor.service import (
    RECOVERY_CODE_COUNT,
    RECOVERY_LOW,
    AlreadyEnabled,
    InvalidCode,
    NoPendingSetup,
    NotEnabled,
    TwoFactorService,
    normalise_recovery_code,
    normalise_totp,
)
from features.sessions.service import PendingLogin, cookie_max_age, session_cookie_name
from shared.events import emit_security_event
from shared.web.client import client_ip, user_agent
from shared.web.cookies import expired_cookie, make_cookie
from shared.web.forms import read_form
from shared.web.render import page, redirect, safe_next

SECURITY_PATH = "/settings/security"
SETUP_PATH = "/settings/security/two-factor/setup"
CHALLENGE_PATH = "/login/two-factor"

ALREADY_ON = "Two-factor authentication is already on. Turn it off first to use a new device."
NO_SETUP = "Start the setup of two-factor authentication first."
NO_PENDING = "Your sign-in has expired or was not started. Please sign in again."
TOTP_FORMAT = "Enter the 6-digit code from your authenticator app (digits only)."
RECOVERY_FORMAT = "A recovery code has 25 letters and digits, like abcde-12345-fghjk-67890-mnpqr."
WRONG_CODE = "That code is not right. Check the time on your device and try again."
WRONG_RECOVERY = "That recovery code is not valid or was already used."
REPLAYED = "That code was already used. Wait for the next code in your app."
TOO_MANY = "Too many wrong codes. Please sign in again."


def _service(db_session: AsyncSession, state: State) -> TwoFactorService:
    return TwoFactorService(db_session, state.settings)


def _codes_page(request: Request, codes: list[str], *, regenerated: bool) -> Template:
    return page(
        request,
        "two_factor/recovery_codes.html",
        {
            "section": "security",
            "codes": codes,
            "codes_text": "\n".join(codes) + "\n",
            "regenerated": regenerated,
        },
    )


class SecuritySettingsController(Controller):
    """``/settings/security``: turn two-factor authentication on and off, recovery codes."""

    path = SECURITY_PATH

    @get("/", name="settings.security")
    async def index(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template:
        """The security section: whether 2FA is on, how many recovery codes are left."""
        status = await _service(db_session, state).status(request.user.id)
        return page(
            request,
            "two_factor/security.html",
            {
                "section": "security",
                "status": status,
                "code_count": RECOVERY_CODE_COUNT,
                "low": RECOVERY_LOW,
            },
        )

    @post("/two-factor/setup", guards=[requires_recent_password], name="two_factor.setup_start")
    async def start_setup(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Redirect:
        """Draw a new pending secret (never while 2FA is on, S26) → 303 to the setup page."""
        try:
            await _service(db_session, state).begin_setup(request.user.id)
        except AlreadyEnabled:
            return redirect(request, SECURITY_PATH, flash=("info", ALREADY_ON))
        return redirect(request, SETUP_PATH)

    @get("/two-factor/setup", guards=[requires_recent_password], name="two_factor.setup")
    async def setup_page(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """QR code and key of the pending secret, and the code field that turns 2FA on."""
        return await self._setup_page(request, db_session, state, {})

    @post("/two-factor/confirm", guards=[requires_recent_password], name="two_factor.confirm")
    async def confirm(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """A valid code turns 2FA on and shows the recovery codes once; else 422 (S26)."""
        data = await read_form(request)
        code = normalise_totp(data.get("code", ""))
        if code is None:
            return await self._setup_page(request, db_session, state, {"code": TOTP_FORMAT})
        service = _service(db_session, state)
        try:
            codes = await service.confirm_setup(request.user.id, code)
        except AlreadyEnabled:
            return redirect(request, SECURITY_PATH, flash=("info", ALREADY_ON))
        except NoPendingSetup:
            return redirect(request, SECURITY_PATH, flash=("info", NO_SETUP))
        except InvalidCode as exc:
            return await self._setup_page(request, db_session, state, {"code": str(exc)})
        emit_security_event(request, "authn_mfa_enabled", user_id=request.user.id)
        return _codes_page(request, codes, regenerated=False)

    @post(
        "/two-factor/recovery-codes",
        guards=[requires_recent_password],
        name="two_factor.regenerate",
    )
    async def regenerate(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Replace every recovery code and show the new ones once (S30)."""
        try:
            codes = await _service(db_session, state).regenerate_codes(request.user.id)
        except NotEnabled:
            return redirect(
                request, SECURITY_PATH, flash=("error", "Two-factor authentication is off.")
            )
        emit_security_event(request, "authn_mfa_recovery_regenerated", user_id=request.user.id)
        return _codes_page(request, codes, regenerated=True)

    @post("/two-factor/disable", guards=[requires_recent_password], name="two_factor.disable")
    async def disable(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Redirect:
        """Turn 2FA off; secret and recovery codes are deleted (S31)."""
        if await _service(db_session, state).disable(request.user.id):
            emit_security_event(request, "authn_mfa_disabled", user_id=request.user.id)
        return redirect(
            request, SECURITY_PATH, flash=("success", "Two-factor authentication is off.")
        )

    async def _setup_page(
        self,
        request: Request,
        db_session: AsyncSession,
        state: State,
        errors: dict[str, str],
    ) -> Template | Redirect:
        try:
            details = await _service(db_session, state).setup_details(
                request.user.id, request.user.email, state.settings.app_name
            )
        except AlreadyEnabled:
            return redirect(request, SECURITY_PATH, flash=("info", ALREADY_ON))
        except NoPendingSetup:
            return redirect(request, SECURITY_PATH, flash=("info", NO_SETUP))
        return page(
            request,
            "two_factor/setup.html",
            {"section": "security", "details": details, "errors": errors},
            status_code=422 if errors else 200,
        )


class TwoFactorChallengeController(Controller):
    """``/login/two-factor``: the second step of signing in (S12, S27–S30)."""

    path = CHALLENGE_PATH

    @get("/", opt={"public": True}, name="two_factor.challenge")
    async def challenge_page(
        self,
        request: Request,
        method: FromQuery[str | None] = None,
        next: FromQuery[str | None] = None,
    ) -> Template | Redirect:
        """Ask for a TOTP code, or (``?method=recovery``) a recovery code."""
        if request.scope.get("user"):
            return Redirect(safe_next(next), status_code=303)
        if request.scope.get("pending_login") is None:
            return redirect(request, "/login", flash=("error", NO_PENDING))
        return self._page(request, "recovery" if method == "recovery" else "totp", next, {})

    @post("/", opt={"public": True}, name="two_factor.challenge_post")
    async def submit_code(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Check a TOTP code: success → 303 signed in; wrong → 422; too many → 429 (S29)."""
        return await self._attempt(request, db_session, state, "totp")

    @post("/recovery", opt={"public": True}, name="two_factor.recovery_post")
    async def submit_recovery(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Template | Redirect:
        """Check a recovery code (spaces, dashes and case forgiven); it never works twice."""
        return await self._attempt(request, db_session, state, "recovery")

    @post("/cancel", opt={"public": True}, name="two_factor.cancel")
    async def cancel(
        self, request: Request, db_session: NamedDependency[AsyncSession], state: State
    ) -> Redirect:
        """Abandon the pending login and go back to the sign-in form."""
        pending: PendingLogin | None = request.scope.get("pending_login")
        if pending is not None:
            await _service(db_session, state).end_pending(pending.id)
        cookie = expired_cookie(session_cookie_name(state.settings), https=state.settings.https)
        return redirect(request, "/login", cookies=[cookie])

    async def _attempt(
        self,
        request: Request,
        db_session: AsyncSession,
        state: State,
        method: str,
    ) -> Template | Redirect:
        settings = state.settings
        data = await read_form(request)
        next_path = data.get("next") or None
        pending: PendingLogin | None = request.scope.get("pending_login")
        if request.scope.get("user"):
            return Redirect(safe_next(next_path), status_code=303)
        if pending is None:
            return redirect(request, "/login", flash=("error", NO_PENDING))
        if method == "totp":
            code = normalise_totp(data.get("code", ""))
            if code is None:
                return self._page(request, method, next_path, {"code": TOTP_FORMAT}, 422)
            kwargs = {"totp": code}
        else:
            code = normalise_recovery_code(data.get("recovery_code", ""))
            if code is None:
                return self._page(
                    request, method, next_path, {"recovery_code": RECOVERY_FORMAT}, 422
                )
            kwargs = {"recovery": code}

        # S29: count the attempt against the account before the code is checked.
        await login_guard.refuse_challenge_if_throttled(request, state, pending.user_id)
        service = _service(db_session, state)
        result = await service.challenge(
            pending.id, ip_address=client_ip(request), user_agent=user_agent(request), **kwargs
        )
        user_id = result.user_id
        if result.outcome == "expired":
            return redirect(request, "/login", flash=("error", NO_PENDING))
        if result.outcome in ("wrong", "replay"):
            assert user_id is not None
            failures = await login_guard.after_challenge_failure(
                request, state, user_id, method=method, replay=result.outcome == "replay"
            )
            if login_guard.challenge_locked(failures):
                await service.end_pending(pending.id)
                await login_guard.after_challenge_lock(request, state, user_id, failures)
                cookie = expired_cookie(session_cookie_name(settings), https=settings.https)
                return redirect(request, "/login", flash=("error", TOO_MANY), cookies=[cookie])
            if result.outcome == "replay":
                return self._page(request, method, next_path, {"code": REPLAYED}, 422)
            field = "code" if method == "totp" else "recovery_code"
            message = WRONG_CODE if method == "totp" else WRONG_RECOVERY
            return self._page(request, method, next_path, {field: message}, 422)

        assert result.token is not None and result.session is not None and user_id is not None
        await login_guard.after_challenge_success(state, user_id)
        await login_guard.after_login_success(
            request, state, "", user_id, via="two_factor", two_factor=method
        )
        flash = ("success", "You are signed in.")
        if result.remaining is not None:
            emit_security_event(
                request,
                "authn_mfa_recovery_used",
                user_id=user_id,
                actor_id=user_id,
                remaining=result.remaining,
            )
            if result.remaining <= RECOVERY_LOW:
                emit_security_event(
                    request,
                    "authn_mfa_recovery_low",
                    user_id=user_id,
                    actor_id=user_id,
                    remaining=result.remaining,
                )
                flash = (
                    "warning",
                    f"You signed in with a recovery code. Only {result.remaining} recovery "
                    "codes are left: create new ones in Settings → Security.",
                )
        cookie = make_cookie(
            session_cookie_name(settings),
            result.token,
            https=settings.https,
            max_age=cookie_max_age(settings, result.session.remember),
        )
        return redirect(request, safe_next(next_path), flash=flash, cookies=[cookie])  # type: ignore[arg-type]

    def _page(
        self,
        request: Request,
        method: str,
        next_path: str | None,
        errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        return page(
            request,
            "two_factor/challenge.html",
            {"method": method, "errors": errors, "next": safe_next(next_path, "")},
            status_code=status_code,
        )
