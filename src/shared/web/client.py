"""Facts about the client behind a request: its IP address, user agent and device."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from litestar.connection import ASGIConnection

USER_AGENT_MAX = 512

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(trusted: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in trusted if entry)


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:5000"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def resolve_client_ip(
    peer: str | None, forwarded_for: list[str], trusted_proxies: list[str]
) -> str | None:
    """The client's address given the socket ``peer`` and the ``X-Forwarded-For`` values.

    The header is only believed when ``peer`` is in ``trusted_proxies`` (IPs or CIDRs). Then
    the hops are read right to left and the first one that is not a trusted proxy is the client
    (the right-most untrusted hop: everything left of it may be forged by the client; OWASP
    ASVS 5.0 V6.3.1 / SECURITY.md S9). A malformed hop stops the walk at the last good hop.
    """
    if peer is None or not trusted_proxies:
        return peer
    networks = _networks(tuple(trusted_proxies))
    peer_ip = _parse_ip(peer)
    if peer_ip is None or not any(peer_ip in net for net in networks):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = str(peer_ip)
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            break
        client = str(address)
        if not any(address in net for net in networks):
            break
    return client


def client_ip(connection: ASGIConnection) -> str | None:
    """The client's IP address: the socket peer, or the right-most untrusted
    ``X-Forwarded-For`` hop when the peer is one of ``TRUSTED_PROXIES`` (S9)."""
    client = connection.client
    peer = client.host if client else None
    trusted = connection.app.state.settings.trusted_proxies
    if not trusted:
        return peer
    return resolve_client_ip(peer, connection.headers.getall("x-forwarded-for", []), trusted)


def user_agent(connection: ASGIConnection) -> str | None:
    """The ``User-Agent`` header, cut to 512 characters, or ``None``."""
    value = connection.headers.get("user-agent")
    return value[:USER_AGENT_MAX] if value else None


@dataclass(frozen=True, slots=True)
class Device:
    """A user agent in words: ``browser`` ("Firefox 121") and ``os`` ("Windows 10")."""

    browser: str
    os: str

    def __str__(self) -> str:
        return f"{self.browser} on {self.os}"


@lru_cache(maxsize=1)
def _ua_parser():
    """ua-parser's pure-Python resolver over lazily compiled built-in regexes.

    Its default (the compiled ``ua-parser-rs`` extractors) keeps every browser, OS and device
    pattern compiled: ~26 MiB per worker process for a parse that runs once per sign-in and
    per row of the sessions page. This one compiles a pattern the first time it is tried
    (~1 MiB in all) and costs ~1 ms per new agent string; :func:`describe_device` caches.
    """
    from ua_parser import BasicResolver, Parser, load_lazy_builtins

    return Parser(BasicResolver(load_lazy_builtins()))


@lru_cache(maxsize=512)
def describe_device(user_agent: str | None) -> Device:
    """Parse ``user_agent`` with ``ua-parser`` into browser and OS names (major versions only).

    Unknown or missing agents give ``"Unknown browser"`` / ``"Unknown OS"``. Only the browser
    and OS are resolved (never the device-model patterns, the largest set).
    """
    from ua_parser import Domain

    if not user_agent:
        return Device("Unknown browser", "Unknown OS")
    result = _ua_parser()(user_agent[:USER_AGENT_MAX], Domain.USER_AGENT | Domain.OS)
    browser = "Unknown browser"
    if result.user_agent is not None and result.user_agent.family != "Other":
        major = result.user_agent.major
        browser = f"{result.user_agent.family} {major}" if major else result.user_agent.family
    os_name = "Unknown OS"
    if result.os is not None and result.os.family != "Other":
        major = result.os.major
        os_name = f"{result.os.family} {major}" if major else result.os.family
    return Device(browser, os_name)
