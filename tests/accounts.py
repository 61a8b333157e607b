"""Accounts made straight in the database (no sign-up form), for tests about what comes after
signing up: throttling, the admin area, browser flows of signed-in people."""

from __future__ import annotations

import uuid

from features.users.service import Role, UserService
from shared.database import Database
from shared.security.passwords import Passwords
from tests.support import DEFAULT_PASSWORD

# Cheapest Argon2id parameters the library accepts: these hashes only need to verify.
_FAST = Passwords(time_cost=1, memory_kib=8, parallelism=1)


async def create_account(
    db: Database,
    email: str,
    *,
    name: str = "Test User",
    password: str = DEFAULT_PASSWORD,
    admin: bool = False,
    verified: bool = True,
) -> uuid.UUID:
    """Create an account (verified email by default) and return its id. The password hash
    uses minimal Argon2 parameters; the first sign-in re-hashes it at the app's (S2)."""
    password_hash = await _FAST.hash(password)
    async with db.write() as session:
        users = UserService(session)
        user = await users.create(
            name=name,
            email=email,
            password_hash=password_hash,
            role=Role.ADMIN if admin else Role.USER,
        )
        if verified:
            await users.mark_email_verified(user.id)
        return user.id
