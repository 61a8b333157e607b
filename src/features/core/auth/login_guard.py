"""Throttling and audit events around sign-in, password confirmation and the two-factor
challenge (SECURITY.md S9, S20, S29, S52).

The handlers call these few functions so the rules stay in one place:

- :func:`refuse_if_throttled` before the password is checked: it *counts* the attempt (one
  atomic increment) and answers 429 + ``Retry-After`` when it is over the budget, so a burst of
  concurrent guesses cannot all pass a check before any failure is counted;
- :func:`after_login_failure` / :func:`after_login_success` once the outcome is known (a
  success resets the budgets).

Budgets (:mod:`shared.security.throttle`): 5 attempts per minute per (normalised email, client
IP) (``"login"``), plus a per-account back-off that grows with consecutive failures
(``"login_account"``); password confirmation has its own per-user budget
(``"confirm_password"``); the two-factor challenge has a per-account budget (``"two_factor"``,
5 attempts a minute) and back-off (``"two_factor_account"``) that outlive any one pending
login, so starting a new pending login with the password buys no new guesses. Event names
follow the OWASP Logging Vocabulary.
"""

from __future__ import annotations

import uuid

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import TooManyRequestsException

from features.audit.service import is_new_device
from features.sessions.service import maybe_prune_expired
from features.users.service import find_by_email, normalise_email
from shared.events import emit_security_event
from shared.security import throttle
from shared.web.client import client_ip, describe_device, user_agent

THROTTLED = "Too many attempts. Please wait a moment and try again."
CHALLENGE_THROTTLED = "Too many wrong codes. Wait a minute before trying again."
CHALLENGE_LOCK_AFTER = 10  # S29: from this many consecutive wrong codes on, the pending login ends


def login_key(request: Request, email: str) -> str:
    """The ``"login"`` budget key: normalised email and client IP."""
    return f"{normalise_email(email)}|{client_ip(request) or '-'}"


def _refuse(
    request: Request,
    retry: int,
    user_id: uuid.UUID | None,
    context: str,
    message: str = THROTTLED,
) -> None:
    """Emit ``authn_login_lock`` (S52) and raise the 429 (``Retry-After: retry``)."""
    emit_security_event(
        request,
        "authn_login_lock",
        user_id=user_id,
        outcome="failure",
        context=context,
        retry_after=retry,
    )
    raise TooManyRequestsException(detail=message, headers={"Retry-After": str(retry)})


async def _account_id(state: State, email: str) -> uuid.UUID | None:
    """The id of the account ``email`` names, or ``None`` (one read, only on a refusal)."""
    user = await find_by_email(state.db.single_read_engine, email)
    return user.id if user is not None else None


async def refuse_if_throttled(request: Request, state: State, email: str) -> None:
    """Count this sign-in attempt against the (email, IP) budget and the account's back-off,
    before the password is checked (S9).

    Raises ``TooManyRequestsException`` (429, ``Retry-After``) when either is used up, after
    emitting ``authn_login_lock`` about the account (when the email belongs to one, so it shows
    on that user's activity page; the actor stays anonymous).
    """
    retry = await throttle.hit_then_backoff(
        state, ("login", login_key(request, email)), ("login_account", normalise_email(email))
    )
    if retry is not None:
        _refuse(request, retry, await _account_id(state, email), "login")


async def after_login_failure(
    request: Request, state: State, email: str, user_id: uuid.UUID | None
) -> None:
    """Start the account's back-off wait (the attempt was counted already) and emit
    ``authn_login_fail``."""
    await throttle.backoff_fail(state, "login_account", normalise_email(email))
    emit_security_event(
        request, "authn_login_fail", user_id=user_id, actor_id=None, outcome="failure"
    )


async def after_login_success(
    request: Request,
    state: State,
    email: str,
    user_id: uuid.UUID,
    *,
    via: str = "password",
    **details: str,
) -> None:
    """Reset the budgets, emit ``authn_login_success`` (with browser and OS), emit
    ``authn_login_new_device`` when this browser/OS/IP combination never signed in to the
    account before, and prune expired sessions and throttle counters now and then.

    ``via``: ``"password"`` (signed in), ``"two_factor_pending"`` (password right, challenge
    next: only the password budgets reset, nothing is reported yet, S12), ``"two_factor"``
    (challenge passed), ``"register"``.
    """
    device = describe_device(user_agent(request))
    ip = client_ip(request)
    if via in ("password", "two_factor_pending"):
        await throttle.reset_all(
            state,
            budgets=(("login", login_key(request, email)),),
            backoffs=(("login_account", normalise_email(email)),),
        )
    if via == "two_factor_pending":
        return  # not signed in yet: the two-factor challenge reports the sign-in (S12)
    if via in ("password", "two_factor") and await is_new_device(state.db, user_id, device, ip):
        emit_security_event(
            request,
            "authn_login_new_device",
            user_id=user_id,
            actor_id=user_id,
            browser=device.browser,
            os=device.os,
            ip=ip,
        )
    emit_security_event(
        request,
        "authn_login_success",
        user_id=user_id,
        actor_id=user_id,
        browser=device.browser,
        os=device.os,
        via=via,
        **details,
    )
    if await maybe_prune_expired(state.db, state.settings) is not None:
        await throttle.prune(state)  # same cadence: at most every 10 minutes per process


async def refuse_confirmation_if_throttled(request: Request, state: State) -> None:
    """Count a password confirmation of the signed-in user before the password is checked;
    raise 429 (and emit ``authn_login_lock``) when the budget is used up (S20)."""
    retry = await throttle.hit(state, "confirm_password", str(request.user.id))
    if retry is not None:
        _refuse(request, retry, request.user.id, "confirm_password")


async def after_confirmation(request: Request, state: State, ok: bool) -> None:
    """Reset the budget after a right password; emit ``authn_login_fail`` after a wrong one
    (it was counted already)."""
    if ok:
        await throttle.reset(state, "confirm_password", str(request.user.id))
        return
    emit_security_event(
        request,
        "authn_login_fail",
        user_id=request.user.id,
        outcome="failure",
        context="confirm_password",
    )


# --- the two-factor challenge (S29) --------------------------------------------------------


async def refuse_challenge_if_throttled(request: Request, state: State, user_id: uuid.UUID) -> None:
    """Count one challenge attempt of account ``user_id`` before the code is checked.

    The budget (5 a minute) and the back-off (after 5 consecutive wrong codes, waits of 1, 2,
    4 … seconds) belong to the account, not to the pending login, so a new password step starts
    no new count. Raises 429 with ``Retry-After`` (emitting ``authn_login_lock``) when used up.
    """
    key = str(user_id)
    retry = await throttle.hit_then_backoff(state, ("two_factor", key), ("two_factor_account", key))
    if retry is not None:
        _refuse(request, retry, user_id, "two_factor", CHALLENGE_THROTTLED)


async def after_challenge_failure(
    request: Request, state: State, user_id: uuid.UUID, *, method: str, replay: bool
) -> int:
    """Record a wrong (or replayed) code of account ``user_id``: start its back-off wait and
    emit ``authn_mfa_fail`` / ``authn_mfa_replay``. Returns the number of consecutive wrong codes
    since the account's last successful challenge (over every pending login)."""
    failures = await throttle.backoff_fail(state, "two_factor_account", str(user_id))
    emit_security_event(
        request,
        "authn_mfa_replay" if replay else "authn_mfa_fail",
        user_id=user_id,
        actor_id=user_id,
        outcome="failure",
        method=method,
        failures=failures,
    )
    return failures


def challenge_locked(failures: int) -> bool:
    """True when ``failures`` consecutive wrong codes must end the pending login (S29)."""
    return failures >= CHALLENGE_LOCK_AFTER


async def after_challenge_lock(
    request: Request, state: State, user_id: uuid.UUID, failures: int
) -> None:
    """Emit ``authn_login_lock`` for a pending login ended by wrong codes (S29, S52).

    ``first`` is true for the first lock of the account's current failure streak: the user is
    notified of that one (``features.notifications`` reacts to it), not of every later one.
    """
    first = await throttle.hit(state, "two_factor_lock_notice", str(user_id)) is None
    emit_security_event(
        request,
        "authn_login_lock",
        user_id=user_id,
        actor_id=user_id,
        outcome="failure",
        reason="two_factor_failures",
        failures=failures,
        first=first,
    )


async def after_challenge_success(state: State, user_id: uuid.UUID) -> None:
    """Forget the account's challenge budget, back-off and lock notice."""
    key = str(user_id)
    await throttle.reset_all(
        state,
        budgets=(("two_factor", key), ("two_factor_lock_notice", key)),
        backoffs=(("two_factor_account", key),),
    )
