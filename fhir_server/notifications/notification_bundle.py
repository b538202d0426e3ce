"""The Backport IG's status Parameters and notification Bundle of a topic-based Subscription.

A notification is a `history` Bundle whose first entry is the subscription
status (a Parameters resource in R4), followed by the focus resource as the
Subscription's payload content asks: the whole resource (`full-resource`),
only its fullUrl (`id-only`), or nothing (`empty`). `$status` answers the same
Parameters with type `query-status` and no notification event.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.notifications.compose import load_versioned
from fhir_server.notifications.message import details_of, focus_of
from fhir_server.notifications.topics import TopicError, payload_content
from fhir_server.store.resources import ResourceStore

_STATUS_PROFILE = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-status-r4"
)


def status_parameters(
    base: str,
    subscription: dict[str, Any],
    kind: str,
    events: int,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The status resource; `event` (number, timestamp, focus) adds one notification-event.

    Event numbers are strings: R4 has no 64-bit integer, and the IG says so.
    """
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": _url(base, subscription)}},
        {"name": "topic", "valueCanonical": subscription.get("criteria", "")},
        {"name": "status", "valueCode": subscription.get("status", "")},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events)},
    ]
    if event is not None:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event["number"])},
            {"name": "timestamp", "valueInstant": event["timestamp"]},
        ]
        if event.get("focus"):
            parts.append({"name": "focus", "valueReference": {"reference": event["focus"]}})
        parameters.append({"name": "notification-event", "part": parts})
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [_STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification_bundle(
    base: str,
    subscription: dict[str, Any],
    status: dict[str, Any],
    focus: str,
    content: str,
    resource: dict[str, Any] | None,
    timestamp: str,
) -> dict[str, Any]:
    """The history Bundle POSTed to the endpoint (`resource` is used for full-resource only)."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": status,
            "request": {"method": "GET", "url": f"{_url(base, subscription)}/$status"},
            "response": {"status": "200"},
        }
    ]
    if content != "empty":
        entry: dict[str, Any] = {"fullUrl": f"{base}/{focus}"}
        if content == "full-resource" and resource is not None:
            entry["resource"] = resource
        entry["request"] = {"method": "PUT", "url": focus}
        entry["response"] = {"status": "200"}
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "timestamp": timestamp,
        "entry": entries,
    }


def status_bundle(base: str, subscription: dict[str, Any], events: int) -> dict[str, Any]:
    """What `$status` answers: a searchset holding the query-status Parameters."""
    status = status_parameters(base, subscription, "query-status", events)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": status,
                "search": {"mode": "match"},
            }
        ],
    }


async def notification_for(
    base: str,
    store: ResourceStore,
    subscription: dict[str, Any],
    communication: dict[str, Any],
) -> dict[str, Any]:
    """The Bundle a stored topic message is delivered as; DeliveryError if it cannot be built."""
    details = details_of(communication)
    focus = str(details.get("focus", ""))
    try:
        content = payload_content(subscription)
    except TopicError as exc:
        raise DeliveryError(str(exc), permanent=True) from None
    resource = None
    if content == "full-resource":
        # The version this event wrote (an Appointment, Encounter, ChargeItem); a Slot as it
        # is now (freed).
        about = focus_of(communication) or ""
        versioned = about if about.startswith(f"{focus}/_history/") else focus
        resource = await load_versioned(store, versioned)
        if resource is None:
            raise DeliveryError(f"The focus {focus} cannot be read.", permanent=True)
    number = int(details.get("eventNumber", 0))
    event = {"number": number, "timestamp": details.get("occurred"), "focus": f"{base}/{focus}"}
    status = status_parameters(base, subscription, "event-notification", number, event)
    return notification_bundle(
        base, subscription, status, focus, content, resource, str(details.get("occurred"))
    )


def _url(base: str, subscription: dict[str, Any]) -> str:
    return f"{base}/Subscription/{subscription['id']}"
