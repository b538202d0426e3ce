"""Canonical URLs of the extensions this engine defines (published from `profiles/`).

One place for the URLs so the booking rules, the generator and the published
StructureDefinitions cannot drift apart.
"""

from __future__ import annotations

from fhir_server.fhir.resource import Resource

BASE = "https://clinic-booking.example.org/fhir/StructureDefinition"

SLOT_LENGTH = f"{BASE}/booking-slot-length"
BUFFER = f"{BASE}/booking-buffer"
APPOINTMENT_TYPE = f"{BASE}/booking-appointment-type"
MINIMUM_NOTICE = f"{BASE}/booking-minimum-notice"
MAXIMUM_DAYS_AHEAD = f"{BASE}/booking-maximum-days-ahead"
CANCELLATION_CUTOFF = f"{BASE}/booking-cancellation-cutoff"
PROVIDER_MUST_CONFIRM = f"{BASE}/booking-provider-must-confirm"
CAPACITY = f"{BASE}/booking-capacity"
HOLD_DURATION = f"{BASE}/booking-hold-duration"
HOLIDAY_CALENDAR = f"{BASE}/booking-holiday-calendar"
HOLD_EXPIRES = f"{BASE}/booking-hold-expires"
BOOKED_COUNT = f"{BASE}/booking-booked-count"
OUTSIDE_AVAILABILITY = f"{BASE}/booking-outside-availability"
CLOSURE = f"{BASE}/booking-closure"  # a Location's closed period (R4 Location has no notAvailable)

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
SLOT_KEY_SYSTEM = f"{BASE.rsplit('/', 1)[0]}/slot-key"


def values(resource: Resource, url: str) -> list[Resource]:
    """All extensions of `resource` with this URL (top level only)."""
    return [e for e in resource.get("extension", []) if e.get("url") == url]


def first(resource: Resource, url: str) -> Resource | None:
    found = values(resource, url)
    return found[0] if found else None


def without(resource: Resource, url: str) -> Resource:
    """A copy of the resource with the extensions of this URL removed."""
    kept = [e for e in resource.get("extension", []) if e.get("url") != url]
    out = {k: v for k, v in resource.items() if k != "extension"}
    if kept:
        out["extension"] = kept
    return out


def replaced(resource: Resource, extension: Resource) -> Resource:
    """A copy with the one extension of `extension['url']` set to `extension`."""
    out = without(resource, extension["url"])
    out["extension"] = [*out.get("extension", []), extension]
    return out
