"""The one check of a destination URL, used when it is saved (every entry point) and again before every send.

Refused: schemes other than http(s); credentials in the URL; ports outside 1-65535; host names that are not valid
DNS names (over 253 characters, labels over 63); and hosts that are, or resolve to, an address that is not public:
loopback (allowed by NOTIFICATIONS_ALLOW_LOOPBACK, for self-hosting and tests), private, link-local, shared (CGNAT),
unspecified, multicast, reserved, including the forms such addresses hide in: numeric and short IPv4
(`2130706433`, `0x7f000001`, `127.1`), IPv4-mapped, 6to4 and NAT64 IPv6.

When saved (`url_check`), a host name that does not resolve is accepted: DNS may be down for a moment, and the send
checks again. When sent (`url_resolve_safe`), every address must resolve and be public, and the request then goes to
the checked address itself (with the original Host and TLS server name), so a DNS answer that changes between the
check and the connection cannot redirect it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
HOST_MAX_LENGTH = 253
LABEL_MAX_LENGTH = 63


class UnsafeDestination(ValueError):
    """The URL is not allowed as a notification destination; the message says why (safe to show the user)."""


@dataclass(frozen=True)
class ResolvedUrl:
    url: str  # the URL with the host replaced by the checked IP address
    host_header: str  # the original host[:port], sent as Host
    server_name: str  # the original host name, for TLS SNI and certificate checks


def resolve_host(host: str, port: int) -> list[Address]:
    """The addresses a host name resolves to (the system resolver); tests replace this function."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def url_check_syntax(url: str) -> tuple[str, str, int]:
    """Checks that need no DNS; returns (scheme, host, port)."""
    if not isinstance(url, str) or not url:
        raise UnsafeDestination("The URL is empty.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"Malformed URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeDestination("The URL has no host.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeDestination("Credentials in the URL are not allowed.")
    if port is not None and not 1 <= port <= 65535:
        raise UnsafeDestination(f"Port {port} is not allowed (1-65535).")
    host = parts.hostname
    if literal_address(host) is None:
        _check_name(host)
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _check_name(host: str) -> None:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeDestination(
            f"The host is not a valid DNS name (at most {HOST_MAX_LENGTH} characters, labels of at most "
            f"{LABEL_MAX_LENGTH})."
        ) from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > HOST_MAX_LENGTH or any(not 1 <= len(label) <= LABEL_MAX_LENGTH for label in labels):
        raise UnsafeDestination(
            f"The host is not a valid DNS name (at most {HOST_MAX_LENGTH} characters, labels of at most "
            f"{LABEL_MAX_LENGTH})."
        )


def literal_address(host: str) -> Address | None:
    """The address a host written as an IP literal stands for, including the numeric and short IPv4 forms that
    resolvers accept (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`); None for a host name."""
    with contextlib.suppress(ValueError):  # not a canonical literal: perhaps a short or numeric IPv4 form
        return ipaddress.ip_address(host.split("%")[0])
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_allowed(address: Address) -> bool:
    """Public (global, not multicast); loopback only with NOTIFICATIONS_ALLOW_LOOPBACK."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    if address.is_loopback:
        return bool(settings.NOTIFICATIONS_ALLOW_LOOPBACK)
    return address.is_global and not address.is_multicast and not address.is_reserved


def _refuse_address(host: str, address: Address) -> UnsafeDestination:
    return UnsafeDestination(f"Host {host!r} is or resolves to a non-public address ({address}).")


def _addresses(host: str, port: int) -> list[Address]:
    try:
        return resolve_host(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnsafeDestination(f"Host {host!r} does not resolve: {exc}.") from None


def url_check(url: str) -> None:
    """The save-time check (API, admin, compatibility surface); raises UnsafeDestination naming the reason."""
    _, host, port = url_check_syntax(url)
    literal = literal_address(host)
    if literal is not None:
        if not address_allowed(literal):
            raise _refuse_address(host, literal)
        return
    try:
        addresses = _addresses(host, port)
    except UnsafeDestination:
        return  # checked again at every send, when it must resolve
    for address in addresses:
        if not address_allowed(address):
            raise _refuse_address(host, address)


def url_resolve_safe(url: str) -> ResolvedUrl:
    """The send-time check: resolve the URL's host and check every address; raises UnsafeDestination naming why."""
    _, host, port = url_check_syntax(url)
    literal = literal_address(host)
    addresses = [literal] if literal is not None else _addresses(host, port)
    if not addresses:
        raise UnsafeDestination(f"Host {host!r} does not resolve.")
    for address in addresses:
        if not address_allowed(address):
            raise _refuse_address(host, address)
    pinned = addresses[0]
    netloc = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    parts = urlsplit(url)
    if parts.port:
        netloc += f":{parts.port}"
    return ResolvedUrl(url=parts._replace(netloc=netloc).geturl(), host_header=parts.netloc, server_name=host)
