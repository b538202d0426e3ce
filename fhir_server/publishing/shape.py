"""Published copies of Locations, Schedules and Slots (SMART Scheduling Links).

Only the elements a slot finder needs leave: a whitelist per type, so a
comment, a note or an extension the clinic keeps for itself is never
published, whatever it holds. A Slot's status is `free` or `busy` (the two
the spec knows: held, blocked or withdrawn Slots are `busy`), and a free
Slot carries the three Slot extensions of the spec:

- `booking-deep-link`: the patient portal's booking page for this Slot; a
  slot finder appends `&source=<its handle>` (the booking-referral round
  trip, see the README);
- `booking-phone`: the phone of the Schedule's Location;
- `slot-capacity`: the places still open (group visits have more than one).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhir_server.publishing.extensions import BOOKING_DEEP_LINK, BOOKING_PHONE, SLOT_CAPACITY
from fhir_server.scheduling.slot_state import booked_count, capacity

_KEPT = {
    "Location": ("name", "telecom", "address", "position", "description", "identifier"),
    "Schedule": ("active", "serviceCategory", "serviceType", "specialty", "actor"),
}
_ACTOR_TYPES = ("Location", "HealthcareService", "PractitionerRole", "Practitioner")
_TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"


def _kept(resource: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = {"resourceType": resource["resourceType"], "id": resource["id"]}
    out |= {name: resource[name] for name in names if name in resource}
    zone = [e for e in resource.get("extension") or [] if e.get("url") == _TIMEZONE]
    if zone:
        out["extension"] = zone
    return out


def published(resource: dict[str, Any]) -> dict[str, Any]:
    """The published copy of a Location or Schedule."""
    out = _kept(resource, _KEPT[resource["resourceType"]])
    if "actor" in out:  # references only: a display may name more than the directory does
        out["actor"] = [
            {"reference": a["reference"]}
            for a in out["actor"]
            if str(a.get("reference", "")).split("/")[0] in _ACTOR_TYPES
        ]
    return out


def phone_of(location: dict[str, Any]) -> str | None:
    """A Location's first phone number (the booking phone of its Schedules' Slots)."""
    for telecom in location.get("telecom") or []:
        if telecom.get("system") == "phone" and telecom.get("value"):
            return str(telecom["value"])
    return None


def deep_link(portal: str, slot_id: str) -> str:
    """The portal's booking page for a Slot (a slot finder appends `&source=...`)."""
    return f"{portal}/book?{urlencode({'slot': slot_id})}"


def published_slot(slot: dict[str, Any], portal: str, phone: str | None) -> dict[str, Any]:
    """The published copy of a Slot: time, status, Schedule and the booking extensions."""
    places = capacity(slot) - booked_count(slot)
    free = slot.get("status") == "free" and places > 0
    out: dict[str, Any] = {
        "resourceType": "Slot",
        "id": slot["id"],
        "schedule": {"reference": slot["schedule"]["reference"]},
        "status": "free" if free else "busy",
        "start": slot["start"],
        "end": slot["end"],
    }
    if free:
        extensions: list[dict[str, Any]] = [
            {"url": BOOKING_DEEP_LINK, "valueUrl": deep_link(portal, slot["id"])}
        ]
        if phone:
            extensions.append({"url": BOOKING_PHONE, "valueString": phone})
        extensions.append({"url": SLOT_CAPACITY, "valueInteger": places})
        out["extension"] = extensions
    return out
