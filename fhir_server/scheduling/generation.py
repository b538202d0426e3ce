"""Keeping a Schedule's free Slots in step with its availability rules.

Generation expands the actors' rules over a window, cuts it into slots and
writes the missing ones under deterministic ids (a rerun creates nothing).
Free Slots that no longer fit the rules (a new holiday, shorter hours) are
deleted; Slots with bookings are never touched, and their Appointments are
flagged for staff with an extension instead of being cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from fhir_server.fhir.errors import Conflict, PreconditionFailed, Unprocessable
from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling import slot_state
from fhir_server.scheduling.availability import Actors, local_days, open_intervals, zone_of
from fhir_server.scheduling.booking import release_expired_holds
from fhir_server.scheduling.holidays import calendar_of, public_holidays
from fhir_server.scheduling.intervals import Interval, covers
from fhir_server.scheduling.settings import booking_settings
from fhir_server.scheduling.slots import slot_resource, slot_times
from fhir_server.store import slots as slot_queries
from fhir_server.store.resources import ResourceStore, Version

_ACTOR_TYPES = {
    "Location": "location",
    "PractitionerRole": "practitioner_role",
    "HealthcareService": "healthcare_service",
}
MAX_WINDOW = timedelta(days=400)
ORPHAN_AGE = timedelta(minutes=5)
_WRITE_ATTEMPTS = 3


@dataclass
class GenerationReport:
    """What one run did, for the operation's answer and the rolling job's log."""

    created: int = 0
    kept: int = 0
    removed: int = 0
    repaired: int = 0
    flagged: list[str] = field(default_factory=list)


async def schedule_actors(store: ResourceStore, schedule: Resource) -> Actors:
    """The first Location, PractitionerRole and HealthcareService among the actors."""
    found: dict[str, Resource] = {}
    for actor in schedule.get("actor", []):
        kind, _, rid = str(actor.get("reference", "")).partition("/")
        name = _ACTOR_TYPES.get(kind)
        if name is None or name in found:
            continue
        version = await store.current(kind, rid)
        if version is not None and version.resource is not None:
            found[name] = version.resource
    if "location" not in found and "practitioner_role" in found:
        for ref in found["practitioner_role"].get("location", []):
            kind, _, rid = str(ref.get("reference", "")).partition("/")
            version = await store.current("Location", rid) if kind == "Location" else None
            if version is not None and version.resource is not None:
                found["location"] = version.resource
                break
    return Actors(**found)


async def open_for(
    store: ResourceStore,
    schedule: Resource,
    window: Interval,
    holidays_override: str | None = None,
) -> list[Interval]:
    """Where the Schedule is open from the local midnight before the window's start to its end:
    actors' hours minus closures and holidays."""
    actors = await schedule_actors(store, schedule)
    zone = zone_of(actors.location)
    days = local_days(window[0], window[1], zone)
    # From local midnight, so that slots are laid out from the opening time and
    # not from whenever the window happens to start.
    window = (datetime.combine(days[0], time(), zone).astimezone(UTC), window[1])
    country, subdivision = calendar_of(actors.location, holidays_override)
    closed = public_holidays(country, subdivision, days[0], days[-1])
    return open_intervals(actors, window, closed)


def _check_window(window: Interval) -> None:
    if window[1] <= window[0]:
        raise Unprocessable("The end must be after the start.", expression=("end",))
    if window[1] - window[0] > MAX_WINDOW:
        raise Unprocessable("Slots are generated for at most 400 days at a time.")


async def generate(
    store: ResourceStore,
    schedule_id: str,
    window: Interval,
    now: datetime,
    holidays_override: str | None = None,
) -> GenerationReport:
    """Create the missing free Slots for the window and retire the ones that no longer fit."""
    _check_window(window)
    schedule = await store.read("Schedule", schedule_id)
    body = schedule.resource or {}
    settings = booking_settings(body)
    window = (max(window[0], now), window[1])
    report = GenerationReport()
    if window[1] <= window[0] or body.get("active") is False:
        return report
    available = await open_for(store, body, window, holidays_override or settings.holiday_calendar)
    wanted = {
        fhir_instant(span[0]): span
        for span in slot_times(available, settings)
        if span[0] >= window[0]
    }
    existing = await slot_queries.slots_between(
        store, schedule_id, fhir_instant(window[0]), fhir_instant(window[1])
    )
    present = {str((s.resource or {}).get("start")) for s in existing}
    for slot in existing:
        current = await _repair_if_orphaned(store, slot, now, report)
        await _retire_if_outside(store, current, available, report)
    for start, span in wanted.items():
        if start in present:
            report.kept += 1
            continue
        if await _write_slot(store, slot_resource(body, span, settings)):
            report.created += 1
        else:
            report.kept += 1
    return report


async def _write_slot(store: ResourceStore, slot: Resource) -> bool:
    """Create the Slot under its deterministic id; False when it already exists.

    A conflict means another run wrote it first, or the store reported a
    transient write conflict: re-read and retry, so the count stays true.
    """
    for _ in range(_WRITE_ATTEMPTS):
        current = await store.current("Slot", slot["id"])
        if current is not None and not current.deleted:
            return False
        try:
            if current is None:
                await store.create(slot, rid=slot["id"])
            else:
                await store.update(slot, expected_version=current.version)
        except (Conflict, PreconditionFailed):
            continue
        return True
    raise Conflict(f"Slot/{slot['id']} could not be written; run the generation again.")


def _span(slot: Resource) -> Interval:
    def moment(key: str) -> datetime:
        return parse_instant(str(slot[key]))

    return moment("start"), moment("end")


async def _repair_if_orphaned(
    store: ResourceStore, slot: Version, now: datetime, report: GenerationReport
) -> Version:
    """Free a single-place Slot left busy with no Appointment (a process died between
    the claim and the Appointment write, or the Appointment was deleted).

    Only Slots untouched for ORPHAN_AGE are considered, so a booking that is
    between its two writes right now is never undone.
    """
    body = slot.resource or {}
    if body.get("status") not in ("busy", "busy-tentative") or slot_state.capacity(body) != 1:
        return slot
    if now - parse_instant(slot.updated) < ORPHAN_AGE:
        return slot
    if await slot_queries.appointments_on_slot(store, f"Slot/{slot.id}"):
        return slot
    try:
        repaired, _ = await store.update(slot_state.released(body), expected_version=slot.version)
    except (Conflict, PreconditionFailed):
        return slot
    report.repaired += 1
    return repaired


async def _retire_if_outside(
    store: ResourceStore, slot: Version, available: list[Interval], report: GenerationReport
) -> None:
    body = slot.resource or {}
    if covers(available, _span(body)) or body.get("status") == "busy-unavailable":
        return
    if slot_state.booked_count(body) == 0 and body.get("status") == "free":
        try:
            await store.delete("Slot", slot.id, expected_version=slot.version)
            report.removed += 1
            return
        except (Conflict, PreconditionFailed):
            pass  # booked meanwhile: flag it below
    for appointment in await slot_queries.appointments_on_slot(store, f"Slot/{slot.id}"):
        if await _flag(store, appointment):
            report.flagged.append(appointment.id)


async def _flag(store: ResourceStore, appointment: Version) -> bool:
    body = appointment.resource or {}
    if ext.first(body, ext.OUTSIDE_AVAILABILITY) is not None:
        return False
    flagged = ext.replaced(body, {"url": ext.OUTSIDE_AVAILABILITY, "valueBoolean": True})
    try:
        await store.update(flagged, expected_version=appointment.version)
    except (Conflict, PreconditionFailed):
        return False
    return True


async def still_outside(store: ResourceStore, flagged: list[Version]) -> list[Version]:
    """The flagged Appointments whose time the rules still leave out.

    A flag is set when hours shrink or a closure is added; when the hours grow back
    or the closure is removed, the Appointment fits again: it is no longer listed
    (the flag stays, and is not set twice if it falls outside once more). Costs a few
    reads per flagged Appointment, of which there are few.
    """
    return [a for a in flagged if not await _fits_now(store, a.resource or {})]


async def _fits_now(store: ResourceStore, appointment: Resource) -> bool:
    for ref in appointment.get("slot", []):
        kind, _, slot_id = str(ref.get("reference", "")).partition("/")
        slot = await store.current("Slot", slot_id) if kind == "Slot" else None
        if slot is None or slot.resource is None:
            continue
        owner = str(slot.resource.get("schedule", {}).get("reference", ""))
        kind, _, schedule_id = owner.partition("/")
        schedule = await store.current("Schedule", schedule_id) if kind == "Schedule" else None
        if schedule is None or schedule.resource is None:
            continue
        span = _span(slot.resource)
        calendar = booking_settings(schedule.resource).holiday_calendar
        return covers(await open_for(store, schedule.resource, span, calendar), span)
    return False


async def generate_rolling(
    store: ResourceStore,
    now: datetime,
    horizon_days: int,
    holidays_override: str | None = None,
) -> dict[str, GenerationReport]:
    """Generate every active Schedule's Slots from now to its horizon; release expired holds."""
    await release_expired_holds(store, now)
    reports = {}
    for schedule in await slot_queries.all_current(store, "Schedule"):
        body = schedule.resource or {}
        if body.get("active") is False:
            continue
        days = min(horizon_days, booking_settings(body).maximum_days_ahead)
        window = (now, now + timedelta(days=days))
        reports[schedule.id] = await generate(store, schedule.id, window, now, holidays_override)
    return reports
