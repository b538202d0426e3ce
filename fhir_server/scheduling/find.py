"""Finding open appointment times: free Slots of matching Schedules as proposed Appointments.

Filters follow the Argonaut Scheduling `$find` parameters. A Schedule matches
a practitioner, location or organization when one of its actors is, or works
for, that resource; specialty and visit type match the Schedule or the Slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_server.scheduling import slot_state
from fhir_server.scheduling.settings import booking_settings
from fhir_server.store import slots as slot_queries
from fhir_server.store.resources import ResourceStore


@dataclass(frozen=True)
class FindQuery:
    start: datetime
    end: datetime
    practitioner: tuple[str, ...] = ()
    location: tuple[str, ...] = ()
    organization: tuple[str, ...] = ()
    specialty: tuple[str, ...] = ()
    visit_type: tuple[str, ...] = ()
    patient: str | None = None
    limit: int = 100


def _ref(value: str, resource_type: str) -> str:
    return value if "/" in value else f"{resource_type}/{value}"


def _token_match(tokens: tuple[str, ...], concepts: list[dict[str, Any]]) -> bool:
    codings = [c for concept in concepts for c in concept.get("coding", [])]
    for token in tokens:
        system, bar, code = token.rpartition("|")
        for coding in codings:
            if coding.get("code") == code and (not bar or system in ("", coding.get("system"))):
                return True
    return False


async def _related(store: ResourceStore, schedule: dict[str, Any]) -> set[str]:
    """The Schedule's actors and what they point at (practitioner, location, organization)."""
    refs = {str(a.get("reference")) for a in schedule.get("actor", []) if a.get("reference")}
    for ref in list(refs):
        kind, _, rid = ref.partition("/")
        found = await store.current(kind, rid)
        body = found.resource if found and found.resource else {}
        for key in ("practitioner", "organization", "providedBy", "managingOrganization"):
            if isinstance(body.get(key), dict) and body[key].get("reference"):
                refs.add(str(body[key]["reference"]))
        for location in body.get("location", []) if kind != "Location" else []:
            if location.get("reference"):
                refs.add(str(location["reference"]))
    return refs


async def _matching_schedules(store: ResourceStore, query: FindQuery) -> dict[str, dict[str, Any]]:
    out = {}
    for version in await slot_queries.all_current(store, "Schedule"):
        schedule = version.resource or {}
        if schedule.get("active") is False:
            continue
        wanted = [
            {_ref(v, kind) for v in values}
            for values, kind in (
                (query.practitioner, "Practitioner"),
                (query.location, "Location"),
                (query.organization, "Organization"),
            )
            if values
        ]
        if wanted:
            related = await _related(store, schedule)
            if not all(related & refs for refs in wanted):
                continue
        out[version.id] = schedule
    return out


def _slot_matches(slot: dict[str, Any], schedule: dict[str, Any], query: FindQuery) -> bool:
    if query.specialty and not _token_match(
        query.specialty, [*schedule.get("specialty", []), *slot.get("specialty", [])]
    ):
        return False
    if query.visit_type:
        types = [slot["appointmentType"]] if slot.get("appointmentType") else []
        types += [*schedule.get("serviceType", []), *slot.get("serviceType", [])]
        if not _token_match(query.visit_type, types):
            return False
    return True


def proposed(
    slot_id: str, slot: dict[str, Any], schedule: dict[str, Any], patient: str | None
) -> dict[str, Any]:
    """The proposed Appointment a client may pass to $hold or $book."""
    participants = [
        {"actor": {"reference": a["reference"]}, "required": "required", "status": "needs-action"}
        for a in schedule.get("actor", [])
        if a.get("reference")
    ]
    if patient:
        participants.insert(
            0,
            {
                "actor": {"reference": _ref(patient, "Patient")},
                "required": "required",
                "status": "needs-action",
            },
        )
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "proposed",
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": participants,
    }
    for key in ("serviceCategory", "serviceType", "specialty"):
        if slot.get(key):
            appointment[key] = slot[key]
    if slot.get("appointmentType"):
        appointment["appointmentType"] = slot["appointmentType"]
    return appointment


async def find(store: ResourceStore, query: FindQuery, now: datetime) -> list[dict[str, Any]]:
    """Proposed Appointments for bookable Slots in the window, earliest first.

    Each Schedule's window is narrowed to its notice and horizon rules before
    the indexed query, so only Slots that may be offered are read.
    """
    schedules = await _matching_schedules(store, query)
    slots = []
    for schedule_id, schedule in schedules.items():
        settings = booking_settings(schedule)
        first = max(query.start, now + settings.minimum_notice)
        last = min(query.end, now + timedelta(days=settings.maximum_days_ahead))
        if first >= last:
            continue
        for status in ("free", "busy-tentative"):
            slots += await slot_queries.bookable_slots(
                store, schedule_id, status, first, last, query.limit
            )
    slots.sort(key=lambda s: str((s.resource or {}).get("start")))
    out: list[dict[str, Any]] = []
    for slot in slots:
        body = slot.resource or {}
        schedule = schedules[str(body["schedule"]["reference"]).partition("/")[2]]
        if body.get("status") == "busy-tentative" and not slot_state.expired_hold(body, now):
            continue
        if not _slot_matches(body, schedule, query):
            continue
        out.append(proposed(slot.id, body, schedule, query.patient))
        if len(out) >= query.limit:
            break
    return out
