"""Finding open appointment times: free Slots of matching Schedules as proposed Appointments.

Filters follow the Argonaut Scheduling `$find` parameters. A Schedule matches
a practitioner, location or organization when one of its actors is, or works
for, that resource; specialty and visit type match the Schedule or the Slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_server.fhir.proposals import proposed_appointment
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling.settings import booking_settings
from fhir_server.store import slots as slot_queries
from fhir_server.store.resources import ResourceStore, Version


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


def _token_match(tokens: tuple[str, ...], concepts: list[Resource]) -> bool:
    codings = [c for concept in concepts for c in concept.get("coding", [])]
    for token in tokens:
        system, bar, code = token.rpartition("|")
        for coding in codings:
            if coding.get("code") == code and (not bar or system in ("", coding.get("system"))):
                return True
    return False


async def _related(store: ResourceStore, schedule: Resource) -> set[str]:
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


async def _matching_schedules(store: ResourceStore, query: FindQuery) -> dict[str, Resource]:
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


def _slot_matches(slot: Resource, schedule: Resource, query: FindQuery) -> bool:
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


def proposed(slot_id: str, slot: Resource, schedule: Resource, patient: str | None) -> Resource:
    """The proposed Appointment a client may pass to $hold or $book."""
    return proposed_appointment(
        slot_id, slot, schedule, _ref(patient, "Patient") if patient else None
    )


async def _free_in_order(
    store: ResourceStore,
    windows: dict[str, tuple[datetime, datetime]],
    wanted: Callable[[Version], bool],
    limit: int,
) -> list[Version]:
    """The first `limit` wanted free Slots over several Schedules, earliest first.

    A k-way merge of per-Schedule pages: each round reads a small page from
    every Schedule not yet exhausted; rows up to the earliest last-read start
    of those Schedules are final. On a dense calendar one round suffices, so
    the work does not grow with the number of Slots stored.
    """
    page = max(2, -(-limit // max(len(windows), 1)) + 1)
    after: dict[str, str | None] = dict.fromkeys(windows)
    fetched: list[Version] = []
    while True:
        for sid in list(after):
            first, last = windows[sid]
            rows = await slot_queries.free_slots(store, sid, first, last, page, after[sid])
            fetched += [row for row in rows if wanted(row)]
            if len(rows) < page:
                del after[sid]
            else:
                after[sid] = slot_queries.start_key(rows[-1])
        fetched.sort(key=slot_queries.start_key)
        if not after:
            return fetched[:limit]
        threshold = min(key for key in after.values() if key is not None)
        final = [row for row in fetched if slot_queries.start_key(row) <= threshold]
        if len(final) >= limit:
            return final[:limit]


async def find(store: ResourceStore, query: FindQuery, now: datetime) -> list[Resource]:
    """Proposed Appointments for free Slots in the window, earliest first.

    Each Schedule's window is narrowed to its notice and horizon rules before
    the indexed queries, so only Slots that may be offered are read. A Slot
    whose hold expired is offered again once the hold is released (by the
    rolling job, or by a booking that takes it over).
    """
    schedules = await _matching_schedules(store, query)
    windows = {}
    for schedule_id, schedule in schedules.items():
        settings = booking_settings(schedule)
        first = max(query.start, now + settings.minimum_notice)
        last = min(query.end, now + timedelta(days=settings.maximum_days_ahead))
        if first < last:
            windows[schedule_id] = (first, last)

    def schedule_of(slot: Version) -> Resource:
        return schedules[str((slot.resource or {})["schedule"]["reference"]).partition("/")[2]]

    def wanted(slot: Version) -> bool:
        return _slot_matches(slot.resource or {}, schedule_of(slot), query)

    slots = await _free_in_order(store, windows, wanted, query.limit)
    return [proposed(s.id, s.resource or {}, schedule_of(s), query.patient) for s in slots]
