"""FHIR R4 Subscription `rest-hook` delivery.

POST to `channel.endpoint` with each `channel.header` ("Name: value"); the
body is the resource as `application/fhir+json` when `channel.payload` is
set, else empty (the EHR then reads the resource itself). A topic-based
Subscription is always sent its notification Bundle (see `topics`). Any 2xx is
success; everything else is retried, and the last failure puts the
Subscription in `error` with the reason.

Endpoints are checked against server-side request forgery: an EHR's
Subscription must not make the server call its own network. At create and
update (422) and again before each delivery (the name may resolve elsewhere
by then), an endpoint is refused unless it is http(s) and every address its
host resolves to is public, or the host is listed in
FHIR_SUBSCRIPTION_ALLOWED_HOSTS. A host that does not resolve yet is let
through at create: its deliveries fail until it does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from fhir_server.notifications.channels.base import DeliveryError


async def endpoint_problem(endpoint: str, allowed_hosts: list[str]) -> str | None:
    """Why the server must not call this endpoint (None: it may)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "A rest-hook endpoint must be an http(s) URL."
    host = parts.hostname.lower()
    if host in {h.lower() for h in allowed_hosts}:
        return None
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None  # not resolvable now: nothing is called until it is (checked again then)
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:
            return (
                f"The rest-hook endpoint's host {host} is a loopback, private or link-local "
                "address; list it in FHIR_SUBSCRIPTION_ALLOWED_HOSTS to allow it."
            )
    return None


def _headers(channel: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for line in channel.get("header", []):
        name, sep, value = str(line).partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    return headers


def notify(subscription: dict[str, Any], body: dict[str, Any] | None) -> None:
    """POST `body` as FHIR JSON to the Subscription's endpoint (None: an empty POST)."""
    channel = subscription.get("channel", {})
    endpoint = str(channel.get("endpoint", ""))
    if not endpoint.startswith(("http://", "https://")):
        raise DeliveryError("The Subscription has no http(s) endpoint.", permanent=True)
    headers = _headers(channel)
    content = b""
    if body is not None:
        headers["Content-Type"] = "application/fhir+json"
        content = orjson.dumps(body)
    try:
        response = httpx.post(endpoint, content=content, headers=headers, timeout=10)
    except httpx.HTTPError:
        raise DeliveryError("The rest-hook endpoint could not be reached.") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"The rest-hook endpoint answered {response.status_code}.")
