"""Facts about the client behind a request."""

from __future__ import annotations

from litestar.connection import ASGIConnection

USER_AGENT_MAX = 512


def client_ip(connection: ASGIConnection) -> str | None:
    """The client's IP address: the socket peer (proxy headers are not trusted here)."""
    client = connection.client
    return client.host if client else None


def user_agent(connection: ASGIConnection) -> str | None:
    """The ``User-Agent`` header, cut to 512 characters, or ``None``."""
    value = connection.headers.get("user-agent")
    return value[:USER_AGENT_MAX] if value else None
