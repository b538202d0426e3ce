"""FHIR R4 Subscription `rest-hook` delivery.

POST to `channel.endpoint` with each `channel.header` ("Name: value"); the
body is the resource as `application/fhir+json` when `channel.payload` is
set, else empty (the EHR then reads the resource itself). Any 2xx is
success; everything else is retried, and the last failure puts the
Subscription in `error` with the reason.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from fhir_server.notifications.channels.base import DeliveryError


def _headers(channel: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for line in channel.get("header", []):
        name, sep, value = str(line).partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    return headers


def notify(subscription: dict[str, Any], resource: dict[str, Any]) -> None:
    channel = subscription.get("channel", {})
    endpoint = str(channel.get("endpoint", ""))
    if not endpoint.startswith(("http://", "https://")):
        raise DeliveryError("The Subscription has no http(s) endpoint.", permanent=True)
    headers = _headers(channel)
    body = b""
    if channel.get("payload"):
        headers["Content-Type"] = "application/fhir+json"
        body = orjson.dumps(resource)
    try:
        response = httpx.post(endpoint, content=body, headers=headers, timeout=10)
    except httpx.HTTPError:
        raise DeliveryError("The rest-hook endpoint could not be reached.") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"The rest-hook endpoint answered {response.status_code}.")
