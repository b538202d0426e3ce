"""FHIR R4 Subscription `rest-hook` delivery.

POST to `channel.endpoint` with each `channel.header` ("Name: value"); the
body is the resource as `application/fhir+json` when `channel.payload` is
set, else empty (the EHR then reads the resource itself). A topic-based
Subscription is always sent its notification Bundle (see `topics`). Any 2xx is
success; everything else is retried, and the last failure puts the
Subscription in `error` with the reason.

Endpoints are checked against server-side request forgery (an EHR's
Subscription must not make the server call its own network) by
`channels.outbound`: at create and update (422), and at each delivery on the
address actually called.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.notifications.channels.outbound import Reach, post


def _headers(channel: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for line in channel.get("header", []):
        name, sep, value = str(line).partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    return headers


def notify(subscription: dict[str, Any], body: dict[str, Any] | None, reach: Reach) -> None:
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
        response = post(endpoint, content, headers, reach, timeout=10)
    except httpx.HTTPError:
        raise DeliveryError("The rest-hook endpoint could not be reached.") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"The rest-hook endpoint answered {response.status_code}.")
