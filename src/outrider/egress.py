"""The one guard for outbound URLs: repo URLs and webhook URLs.

A URL passes when its scheme is http(s), it carries no credentials, and every address
its host resolves to is public, unless an operator allowed that address's network
with OUTRIDER_ALLOWED_PRIVATE_CIDRS.

It runs when a URL is accepted and again at every connection: `post` resolves once,
checks, and connects to exactly the address it checked (Host header and TLS SNI keep
the name), never following redirects, so DNS rebinding and redirects gain nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from outrider.config import IPNetwork, Settings
from outrider.errors import ApiError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Beyond what `is_global` already refuses: ranges that are "global" by the registry
# but must never be reached from a server (NAT64, 6to4, Teredo wrap IPv4 addresses).
_EXTRA_REFUSED = [
    ipaddress.ip_network(n)
    for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "100.64.0.0/10")
]
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class EgressRefused(ValueError):
    """The URL may not be reached; the message says why, for a person."""


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def _numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host means, in any spelling (decimal, octal, hex, shortened)."""
    host = unquote(host)
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        # inet_aton takes the legacy forms libc and browsers take: 2130706433, 0x7f.1, 0177.1
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
        if int(address) >> 32 == 0 and int(address) > 1:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_refused(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> bool:
    if any(address in network for network in allowed if network.version == address.version):
        return False
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_refused(embedded, allowed)
    if address in _METADATA or not address.is_global or address.is_multicast:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return True
    return any(
        address in network for network in _EXTRA_REFUSED if network.version == address.version
    )


def _split(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressRefused("Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise EgressRefused("URLs must not carry credentials.")
    host = parts.hostname
    if not host:
        raise EgressRefused("The URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise EgressRefused("The URL's port is invalid.") from error
    return host, port


async def _system_resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return ()
    # Scope ids ("fe80::1%eth0") are dropped: the address alone decides.
    return tuple(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )


# Module-level so a test can stand in a resolver that lies (DNS rebinding).
resolve = _system_resolve


async def check_url(url: str, allowed: Iterable[IPNetwork] = ()) -> CheckedUrl:
    """Resolve and check a URL; raises EgressRefused with a reason a person can act on."""
    host, port = _split(url)
    allowed = tuple(allowed)
    numeric = _numeric_host(host)
    if numeric is not None:
        addresses: tuple[IPAddress, ...] = (numeric,)
    else:
        addresses = await resolve(host, port)
        if not addresses:
            raise EgressRefused(f"The host {host!r} does not resolve to any address.")
    for address in addresses:
        if is_refused(address, allowed):
            raise EgressRefused(
                f"The host {host!r} resolves to {address}, which is not a public address."
            )
    return CheckedUrl(url=url, host=host, port=port, addresses=addresses)


def _pinned(
    checked: CheckedUrl, address: IPAddress
) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL aimed at a checked address, plus the Host header and SNI of the name."""
    url = httpx.URL(checked.url)
    default_port = 443 if url.scheme == "https" else 80
    host_header = url.host if checked.port == default_port else f"{url.host}:{checked.port}"
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), {"Host": host_header}, extensions


async def post(
    client: httpx.AsyncClient,
    url: str,
    allowed: Iterable[IPNetwork],
    content: bytes,
    headers: dict[str, str],
    timeout: float,
) -> httpx.Response:
    """POST to `url` through the guard: checked now, connected to what was checked. Each
    checked address is tried in turn while connecting fails (a dual-stack name whose
    IPv6 route is down still delivers over IPv4)."""
    checked = await check_url(url, allowed)
    for index, address in enumerate(checked.addresses):
        target, host, extensions = _pinned(checked, address)
        request = client.build_request(
            "POST",
            target,
            content=content,
            headers={**headers, **host},
            timeout=timeout,
            extensions=extensions,
        )
        try:
            return await client.send(request, follow_redirects=False)
        except httpx.ConnectError:
            if index == len(checked.addresses) - 1:
                raise
    raise AssertionError("check_url returns at least one address")


async def accept(settings: Settings, url: str, field: str) -> None:
    """Check a URL a request carries; a refusal is a 400 naming the field."""
    try:
        await check_url(url, settings.allowed_networks)
    except EgressRefused as error:
        raise ApiError(400, f"invalid_{field}", f"{field}: {error}") from error
