"""One message to send, as the FHIR Communication that records it.

The Communication is the outbox row: `identifier` carries the idempotency
key, `status` the delivery state (preparation -> in-progress -> completed |
not-done), `medium` the channel, `about` first the version of what it is about (the
appointment that caused it; for a rest-hook following Encounters or
ChargeItems, that record) and then the Subscription for rest-hooks, and the `notification-delivery`
extension what the sender needs: event, recipient role, destination,
language, attempts and the earliest next attempt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fhir_server.notifications.codes import (
    CHANNEL_SYSTEM,
    DELIVERY_EXT,
    EVENT_SYSTEM,
    KEY_SYSTEM,
)

_NAMESPACE = uuid.UUID("6f1c3b9e-3f43-4a57-9a86-0d1f4b1e2a77")

# Sub-extension name -> FHIR value[x] type, for the delivery extension.
_FIELDS = {
    "event": "valueCode",
    "role": "valueCode",
    "recipientName": "valueString",
    "destination": "valueString",
    "language": "valueCode",
    "previousStart": "valueDateTime",
    "replaces": "valueString",
    "cancelledBy": "valueCode",
    "offset": "valueInteger",
    "attempts": "valueInteger",
    "nextAttempt": "valueInstant",
    "topic": "valueUri",
    "focus": "valueString",
    "eventNumber": "valueInteger",
    "occurred": "valueInstant",
}


def message_id(key: str) -> str:
    """The Communication id is derived from the idempotency key: one row per key, ever."""
    return str(uuid.uuid5(_NAMESPACE, key))


@dataclass
class Message:
    key: str
    event: str
    channel: str
    about: str  # versioned reference Type/id/_history/v (an Appointment, Encounter, ...)
    recipient: str | None  # Patient/x, Practitioner/x, ... ; None for rest-hooks
    subject: str | None  # the patient it concerns
    details: dict[str, Any] = field(default_factory=dict)  # the delivery extension's fields
    subscription: str | None = None

    @property
    def id(self) -> str:
        return message_id(self.key)

    def to_communication(self) -> dict[str, Any]:
        about = [{"reference": self.about}]
        if self.subscription:
            about.append({"reference": self.subscription})
        resource: dict[str, Any] = {
            "resourceType": "Communication",
            "id": self.id,
            "identifier": [{"system": KEY_SYSTEM, "value": self.key}],
            "status": "preparation",
            "category": [{"coding": [{"system": EVENT_SYSTEM, "code": self.event}]}],
            "medium": [{"coding": [{"system": CHANNEL_SYSTEM, "code": self.channel}]}],
            "about": about,
            "extension": [delivery_extension(self.details)],
        }
        if self.subject:
            resource["subject"] = {"reference": self.subject}
        if self.recipient:
            resource["recipient"] = [{"reference": self.recipient}]
        return resource


def delivery_extension(details: dict[str, Any]) -> dict[str, Any]:
    parts = [
        {"url": name, _FIELDS[name]: value}
        for name, value in details.items()
        if value is not None and name in _FIELDS
    ]
    return {"url": DELIVERY_EXT, "extension": parts}


def details_of(communication: dict[str, Any]) -> dict[str, Any]:
    for extension in communication.get("extension", []):
        if extension.get("url") == DELIVERY_EXT:
            return {
                part["url"]: part[_FIELDS[part["url"]]]
                for part in extension.get("extension", [])
                if part.get("url") in _FIELDS and _FIELDS[part["url"]] in part
            }
    return {}


def with_details(communication: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with delivery fields changed (None removes a field)."""
    details = {**details_of(communication), **changes}
    kept = [e for e in communication.get("extension", []) if e.get("url") != DELIVERY_EXT]
    return {**communication, "extension": [*kept, delivery_extension(details)]}


def code_of(communication: dict[str, Any], element: str) -> str:
    concepts = communication.get(element, [])
    return str(concepts[0]["coding"][0]["code"]) if concepts else ""


def reference_to(communication: dict[str, Any], resource_type: str) -> str | None:
    for about in communication.get("about", []):
        reference = str(about.get("reference", ""))
        if reference.startswith(f"{resource_type}/"):
            return reference
    return None


def focus_of(communication: dict[str, Any]) -> str | None:
    """The versioned reference of what the message is about (its first `about`)."""
    about = communication.get("about", [])
    return str(about[0].get("reference", "")) or None if about else None
