"""Calling an address a client gave us without letting it reach our own network.

Rest-hook endpoints (an EHR's Subscription) and web push endpoints (a
patient's browser) are both URLs chosen by a client, so both get the same
checks against server-side request forgery:

- in production only `https` (elsewhere `http` too, for local receivers);
- every address the host resolves to must be public: loopback, private,
  link-local, shared (CGNAT) and reserved addresses are refused, also when
  they hide inside an IPv6 address (IPv4-mapped, NAT64 `64:ff9b::/96`,
  6to4, Teredo), unless the host is listed in FHIR_SUBSCRIPTION_ALLOWED_HOSTS;
- at delivery the name is resolved again, the address is checked, and the
  request goes to exactly that address (TLS still verifies the host name), so
  a name that changed its answer since it was registered (DNS rebinding)
  cannot steer the request elsewhere;
- redirects are never followed.

`endpoint_problem` checks at registration (422 for the client); `post` is
the delivery-time call and raises `Refused` (a permanent `DeliveryError`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(DeliveryError):
    """The endpoint is one the server must not call; retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, permanent=True)


@dataclass(frozen=True)
class Reach:
    """Where outbound calls may go: the allowed private hosts, and whether https is required."""

    allowed_hosts: frozenset[str]
    https_only: bool

    @classmethod
    def of(cls, settings: Settings) -> Reach:
        return cls(
            frozenset(h.lower() for h in settings.subscription_allowed_hosts),
            settings.environment == "production",
        )


def _inner(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 addresses an IPv6 one carries (mapped, NAT64, 6to4, Teredo)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            found.append(address.ipv4_mapped)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour:
            found.append(address.sixtofour)
        if address.teredo:
            found.extend(address.teredo)
    return found


def is_public(address: IPAddress) -> bool:
    """May the server call this address? (Every address it carries must be global.)"""
    return all(a.is_global and not a.is_multicast for a in _inner(address))


def _scheme_problem(parts: SplitResult, reach: Reach) -> str | None:
    schemes = ("https",) if reach.https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        return f"The endpoint must be an {' or '.join(schemes)} URL."
    return None


def _addresses(found: list[Any]) -> list[IPAddress]:
    return [ipaddress.ip_address(str(sockaddr[0]).split("%")[0]) for *_, sockaddr in found]


async def endpoint_problem(endpoint: str, reach: Reach) -> str | None:
    """Why the server must not call this endpoint (None: it may), as seen now.

    A host that does not resolve yet is let through: nothing is called until
    it does, and `post` checks again then.
    """
    parts = urlsplit(endpoint)
    problem = _scheme_problem(parts, reach)
    if problem or str(parts.hostname).lower() in reach.allowed_hosts:
        return problem
    host = str(parts.hostname).lower()
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return _private(host, _addresses(found))


def _private(host: str, addresses: list[IPAddress]) -> str | None:
    if addresses and all(is_public(a) for a in addresses):
        return None
    return (
        f"The endpoint's host {host} is a loopback, private or link-local address; "
        "list it in FHIR_SUBSCRIPTION_ALLOWED_HOSTS to allow it."
    )


def post(
    endpoint: str, content: bytes | None, headers: dict[str, str], reach: Reach, timeout: float
) -> httpx.Response:
    """POST to the endpoint at an address checked just now; redirects are not followed."""
    parts = urlsplit(endpoint)
    problem = _scheme_problem(parts, reach)
    if problem:
        raise Refused(problem)
    host = str(parts.hostname).lower()
    url, extensions = endpoint, {}
    if host not in reach.allowed_hosts:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise DeliveryError("The endpoint's host name could not be resolved.") from None
        addresses = _addresses(found)
        private = _private(host, addresses)
        if private:
            raise Refused(private)
        pinned = addresses[0]
        literal = f"[{pinned}]" if pinned.version == 6 else str(pinned)
        url = parts._replace(netloc=f"{literal}:{port}").geturl()
        headers = {**headers, "Host": parts.netloc.rpartition("@")[2]}
        extensions = {"sni_hostname": host}
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        request = client.build_request(
            "POST", url, content=content, headers=headers, extensions=extensions
        )
        return client.send(request)
