"""Fixtures for notification tests: a ``db`` of the test's own on the test's database.

The test client runs the app on its own event loop (a portal thread); asyncpg connections
belong to one loop, so tests read and write through this ``Database`` instead of the app's.
Each ``AsyncTestClient`` also runs the app's lifespan on its own loop, so these tests use one
client per app and make the second user (``bob``) directly in the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from features.users.service import UserService
from shared.database import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def add_user(db: Database, email: str, name: str = "Someone") -> uuid.UUID:
    """Insert a user who never signs in here (no password), through the users service."""
    async with db.writer() as session:
        user = await UserService(session).create(name=name, email=email, password_hash="!")
        await session.commit()
        return user.id


@pytest.fixture
async def bob(db: Database) -> uuid.UUID:
    """A second user, made directly in the database (one test client per app: see below)."""
    return await add_user(db, "bob@example.com", "Bob")
