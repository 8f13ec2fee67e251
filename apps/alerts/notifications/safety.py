"""Refuse destinations that would make the server call into its own network (SSRF).

Only http(s); every address the host resolves to must be public (loopback allowed by a setting). The request then
goes to the checked address itself (with the original Host and TLS server name), so a DNS answer that changes
between the check and the connection cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .conf import conf


class UnsafeDestination(ValueError):
    """The URL is not allowed as a notification destination."""


@dataclass(frozen=True)
class ResolvedUrl:
    url: str  # the URL with the host replaced by the checked IP address
    host_header: str  # the original host[:port], sent as Host
    server_name: str  # the original host name, for TLS SNI and certificate checks


def url_check_syntax(url: str) -> tuple[str, str, int]:
    """Scheme and host checks that need no DNS; returns (scheme, host, port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"Malformed URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeDestination("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeDestination("Credentials in the URL are not allowed.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return bool(conf("NOTIFICATIONS_ALLOW_LOOPBACK"))
    return address.is_global and not address.is_multicast


def url_resolve_safe(url: str) -> ResolvedUrl:
    """Resolve the URL's host and check every address; raises UnsafeDestination naming the reason."""
    _, host, port = url_check_syntax(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeDestination(f"Host {host!r} does not resolve: {exc}.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeDestination(f"Host {host!r} does not resolve.")
    for address in addresses:
        if not address_allowed(address):
            raise UnsafeDestination(f"Host {host!r} resolves to a non-public address ({address}).")
    pinned = addresses[0]
    netloc = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    parts = urlsplit(url)
    if parts.port:
        netloc += f":{parts.port}"
    return ResolvedUrl(url=parts._replace(netloc=netloc).geturl(), host_header=parts.netloc, server_name=host)
