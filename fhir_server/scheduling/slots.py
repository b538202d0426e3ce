"""Pure slot generation: open intervals and booking settings in, Slot resources out.

A Slot's id is derived from its Schedule and times, so generating the same
window twice yields the same ids and the store's unique key makes a second
run (or a concurrent one) create nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from fhir_server.fhir.instants import fhir_instant
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.intervals import Interval
from fhir_server.scheduling.settings import BookingSettings


def slot_times(open_intervals: Iterable[Interval], settings: BookingSettings) -> list[Interval]:
    """Back-to-back slots of `slot_length`, `buffer` apart, each wholly inside an interval."""
    out: list[Interval] = []
    for start, end in open_intervals:
        cursor = start
        while cursor + settings.slot_length <= end:
            out.append((cursor, cursor + settings.slot_length))
            cursor += settings.slot_length + settings.buffer
    return out


def slot_id(schedule_id: str, span: Interval) -> str:
    """The deterministic id of the generated Slot for this Schedule and time span."""
    key = f"{schedule_id}|{fhir_instant(span[0])}|{fhir_instant(span[1])}"
    return "g" + hashlib.sha256(key.encode()).hexdigest()[:40]


def slot_resource(schedule: Resource, span: Interval, settings: BookingSettings) -> Resource:
    """A free Slot of the Schedule for the span, carrying its capacity when above one."""
    slot: Resource = {
        "resourceType": "Slot",
        "id": slot_id(schedule["id"], span),
        "identifier": [
            {
                "system": ext.SLOT_KEY_SYSTEM,
                "value": f"{schedule['id']}|{fhir_instant(span[0])}|{fhir_instant(span[1])}",
            }
        ],
        "schedule": {"reference": f"Schedule/{schedule['id']}"},
        "status": "free",
        "start": fhir_instant(span[0]),
        "end": fhir_instant(span[1]),
    }
    for key in ("serviceCategory", "serviceType", "specialty"):
        if schedule.get(key):
            slot[key] = schedule[key]
    if settings.appointment_types:
        slot["appointmentType"] = {
            "coding": [
                {"system": system, "code": code} if system else {"code": code}
                for system, code in settings.appointment_types[:1]
            ]
        }
    if settings.capacity > 1:
        slot["extension"] = [{"url": ext.CAPACITY, "valuePositiveInt": settings.capacity}]
    return slot
