"""Reactions to other features' events."""

from __future__ import annotations

import logging

from litestar.datastructures import State
from litestar.events import listener

from features.assets.service import delete_user_files
from shared.events import SECURITY_EVENT, SecurityEvent

logger = logging.getLogger(__name__)


@listener(SECURITY_EVENT)
async def remove_files_of_deleted_user(event: SecurityEvent, state: State) -> None:
    """On ``user_deleted``, remove the user's stored files (their rows went with the user)."""
    if event.name != "user_deleted" or event.user_id is None:
        return
    removed = await delete_user_files(state.settings, event.user_id)
    logger.info("removed %d stored file(s) of a deleted user", removed)
