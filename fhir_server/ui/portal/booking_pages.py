"""The booking pages' logic: FHIR calls in, view models out (no HTTP, no templates).

Each function is one page's worth of reads and writes through the patient's
own FHIR client. Choosing a time: HealthcareService -> its Schedules (one per
clinician) -> free Slots of one Schedule or all of them ("anyone"). Holding
and booking use the Argonaut operations (`$hold`, `$book`), rescheduling is
`$book` with `cancelled-appt-id`, cancelling is an update to `cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fhir_server.fhir.instants import fhir_instant
from fhir_server.publishing.extensions import BOOKING_REFERRAL
from fhir_server.ui.fhir_api import PortalApi, PortalApiError, entries
from fhir_server.ui.portal.booking_model import (
    LocalTime,
    Resource,
    actor_display,
    actor_ids,
    count_by_day,
    day_bounds,
    is_upcoming,
    local,
    name_of,
    proposal,
    reference_id,
    status_words,
    week_of,
    zone_of,
)

ANYONE = "any"
ALTERNATIVES = 3
LOOK_AHEAD = timedelta(days=90)
"""How far ahead "the next free time" is looked for (the clinics' usual horizon)."""


class NotFound(Exception):
    """What the patient asked for does not exist or is not theirs (a forged id)."""


def parameters(*items: Resource) -> Resource:
    return {"resourceType": "Parameters", "parameter": list(items)}


async def update(api: PortalApi, resource: Resource) -> Resource:
    """PUT the resource back, version-checked (`If-Match`) so a concurrent change is a 412."""
    path = f"{resource['resourceType']}/{resource['id']}"
    version = resource.get("meta", {}).get("versionId")
    headers = {"If-Match": f'W/"{version}"'} if version else None
    return await api.request("PUT", path, json_body=resource, headers=headers)


def patient_of(api: PortalApi) -> str:
    """The signed-in patient's id; a user without one cannot book (the server would refuse)."""
    if not api.patient:
        raise PortalApiError(403, {"resourceType": "OperationOutcome", "issue": []})
    return api.patient


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    hint: str = ""


@dataclass(frozen=True)
class Clinic:
    """One bookable service: where it is, its zone, the Schedules behind it."""

    service: Resource
    location: Resource | None
    schedules: list[Resource]
    zone: ZoneInfo

    @property
    def service_id(self) -> str:
        return str(self.service["id"])

    def schedule_ids(self, clinician: str) -> list[str]:
        ids = [str(s["id"]) for s in self.schedules]
        return ids if clinician == ANYONE else [i for i in ids if i == clinician]

    def schedule(self, schedule_id: str) -> Resource | None:
        return next((s for s in self.schedules if s.get("id") == schedule_id), None)

    def contact(self) -> list[Resource]:
        """How to reach the clinic when nothing can be booked online."""
        for resource in (self.service, self.location or {}):
            if resource.get("telecom"):
                return list(resource["telecom"])
        return []


@dataclass(frozen=True)
class FreeTime:
    slot_id: str
    when: LocalTime
    schedule_id: str
    clinician: str


@dataclass(frozen=True)
class Elsewhere:
    """What an empty day or week says instead of a blank grid: the next free time, or,
    when nothing at all can be booked online, how to contact the clinic."""

    next_free: FreeTime | None = None
    contact: list[Resource] = field(default_factory=list)


@dataclass(frozen=True)
class DayView:
    day: date
    times: list[FreeTime]
    elsewhere: Elsewhere


@dataclass(frozen=True)
class WeekView:
    days: list[tuple[date, int]]
    elsewhere: Elsewhere


async def services(api: PortalApi) -> list[Choice]:
    bundle = await api.search("HealthcareService", {"active": "true", "_count": "100"})
    found = entries(bundle, "HealthcareService")
    return [Choice(str(s["id"]), name_of(s), str(s.get("comment", ""))) for s in found]


async def clinic(api: PortalApi, service_id: str) -> Clinic:
    """The service, its first Location (for the zone) and its active Schedules: one search
    (`_include` the Locations, `_revinclude` the Schedules naming the service)."""
    bundle = await api.search(
        "HealthcareService",
        {
            "_id": service_id,
            "_include": "HealthcareService:location",
            "_revinclude": "Schedule:actor",
        },
    )
    found = entries(bundle, "HealthcareService")
    if not found:
        raise NotFound(service_id)
    service = found[0]
    schedules = [s for s in entries(bundle, "Schedule") if s.get("active") is not False]
    location_ids = [reference_id(ref, "Location") for ref in service.get("location", [])]
    places = {str(r.get("id")): r for r in entries(bundle, "Location")}
    location = places.get(location_ids[0] or "") if location_ids else None
    return Clinic(service, location, schedules, zone_of(location, *schedules))


def clinicians(place: Clinic) -> list[Choice]:
    """One choice per Schedule (a clinician), named by its PractitionerRole actor."""
    return [
        Choice(str(s["id"]), actor_display(s, "PractitionerRole") or name_of(s))
        for s in place.schedules
    ]


def _free_time(slot: Resource, place: Clinic) -> FreeTime:
    schedule_id = reference_id(slot.get("schedule"), "Schedule") or ""
    schedule = place.schedule(schedule_id) or {}
    return FreeTime(
        str(slot["id"]),
        local(str(slot["start"]), place.zone),
        schedule_id,
        actor_display(schedule, "PractitionerRole"),
    )


async def free_slots(
    api: PortalApi,
    place: Clinic,
    clinician: str,
    start: datetime,
    end: datetime,
    count: int = 200,
    elements: str = "",
) -> list[Resource]:
    """Free Slots of the chosen Schedule(s) starting in [start, end), earliest first;
    `elements` trims each to those fields (`_elements`) where only the times matter."""
    ids = place.schedule_ids(clinician)
    if not ids:
        return []
    query = [
        ("schedule", ",".join(f"Schedule/{i}" for i in ids)),
        ("status", "free"),
        ("start", f"ge{fhir_instant(start)}"),
        ("start", f"lt{fhir_instant(end)}"),
        ("_sort", "start"),
        ("_count", str(count)),
        *([("_elements", elements)] if elements else []),
    ]
    bundle = await api.search("Slot", query)
    return entries(bundle, "Slot")


async def next_free(
    api: PortalApi,
    place: Clinic,
    clinician: str,
    after: datetime,
    now: datetime,
    count: int = 1,
) -> list[FreeTime]:
    """The first free times from `after` on (never in the past)."""
    start = max(after, now)
    slots = await free_slots(api, place, clinician, start, now + LOOK_AHEAD, count)
    return [_free_time(s, place) for s in slots]


async def week(
    api: PortalApi, place: Clinic, clinician: str, around: date, now: datetime
) -> WeekView:
    days = week_of(around)
    first, _ = day_bounds(days[0], place.zone)
    _, last = day_bounds(days[-1], place.zone)
    slots = await free_slots(api, place, clinician, max(first, now), last, 1000, "start")
    counts = count_by_day(slots, place.zone)
    elsewhere = Elsewhere() if slots else await _elsewhere(api, place, clinician, last, now)
    return WeekView([(d, counts.get(d, 0)) for d in days], elsewhere)


async def day(api: PortalApi, place: Clinic, clinician: str, on: date, now: datetime) -> DayView:
    first, last = day_bounds(on, place.zone)
    slots = await free_slots(api, place, clinician, max(first, now), last)
    elsewhere = Elsewhere() if slots else await _elsewhere(api, place, clinician, last, now)
    return DayView(on, [_free_time(s, place) for s in slots], elsewhere)


async def _elsewhere(
    api: PortalApi, place: Clinic, clinician: str, after: datetime, now: datetime
) -> Elsewhere:
    following = await next_free(api, place, clinician, after, now)
    return Elsewhere(following[0]) if following else Elsewhere(contact=place.contact())


async def hold(api: PortalApi, slot_id: str, source: str = "") -> Resource:
    """Hold one free Slot for the patient: the pending Appointment with its expiry.

    `source` is the slot finder that sent the patient here by a published deep link
    (SMART Scheduling Links): the Appointment keeps it as `booking-referral`.

    Raises NotFound for a Slot that does not exist, PortalApiError (409) when it was
    taken meanwhile.
    """
    try:
        slot = await api.read("Slot", slot_id)
        schedule_id = reference_id(slot.get("schedule"), "Schedule")
        schedule = await api.read("Schedule", schedule_id or "")
    except PortalApiError as error:
        raise NotFound(slot_id) from error
    wanted = proposal(slot, schedule, patient_of(api))
    if source:
        wanted["extension"] = [{"url": BOOKING_REFERRAL, "valueString": source}]
    answer = await api.operation(
        "Appointment/$hold", parameters({"name": "appt-resource", "resource": wanted})
    )
    return entries(answer, "Appointment")[0]


async def release(api: PortalApi, appointment: Resource, reason: str) -> None:
    """Give a hold back early (the patient chose another time)."""
    if appointment.get("status") == "pending":
        cancelled = {**appointment, "status": "cancelled", "cancelationReason": {"text": reason}}
        await update(api, cancelled)


async def book_hold(api: PortalApi, hold_id: str, comment: str = "") -> Resource:
    """Book the patient's hold; what they asked the clinic to know is written on it first."""
    if comment.strip():
        held = await api.read("Appointment", hold_id)
        await update(api, {**held, "comment": comment.strip()})
    answer = await api.operation(
        "Appointment/$book", parameters({"name": "appt-id", "valueUri": f"Appointment/{hold_id}"})
    )
    return entries(answer, "Appointment")[0]


async def reschedule(api: PortalApi, old_id: str, slot_id: str, comment: str = "") -> Resource:
    """Book the new Slot and cancel the old Appointment in one step (all or nothing); a
    `comment` (the front desk's reason for the move) is kept on the new Appointment."""
    try:
        slot = await api.read("Slot", slot_id)
        schedule = await api.read("Schedule", reference_id(slot.get("schedule"), "Schedule") or "")
    except PortalApiError as error:
        raise NotFound(slot_id) from error
    wanted = proposal(slot, schedule, patient_of(api))
    if comment.strip():
        wanted["comment"] = comment.strip()
    answer = await api.operation(
        "Appointment/$book",
        parameters(
            {"name": "appt-resource", "resource": wanted},
            {"name": "cancelled-appt-id", "valueUri": f"Appointment/{old_id}"},
        ),
    )
    return entries(answer, "Appointment")[0]


@dataclass
class AppointmentView:
    """Everything the confirmation, list, change and cancel pages say about one Appointment."""

    appointment: Resource
    service: Resource | None
    location: Resource | None
    schedule: Resource | None
    zone: ZoneInfo

    @property
    def id(self) -> str:
        return str(self.appointment["id"])

    @property
    def status(self) -> str:
        return str(self.appointment.get("status"))

    @property
    def start(self) -> LocalTime:
        return local(str(self.appointment["start"]), self.zone)

    @property
    def end(self) -> LocalTime:
        return local(str(self.appointment["end"]), self.zone)

    @property
    def clinician(self) -> str:
        return actor_display(self.schedule or {}, "PractitionerRole") or actor_display(
            self.appointment, "PractitionerRole"
        )

    @property
    def what(self) -> str:
        return name_of(self.service) or actor_display(self.appointment, "HealthcareService")

    @property
    def where(self) -> str:
        return name_of(self.location)

    @property
    def address(self) -> list[str]:
        address = (self.location or {}).get("address") or {}
        parts = [*address.get("line", []), address.get("city"), address.get("postalCode")]
        return [str(p) for p in parts if p]

    @property
    def words(self) -> str:
        return status_words(self.appointment)

    @property
    def contact(self) -> list[Resource]:
        """How to reach the clinic about this appointment (the service's, else the place's)."""
        for resource in (self.service or {}, self.location or {}):
            if resource.get("telecom"):
                return list(resource["telecom"])
        return []

    @property
    def service_id(self) -> str | None:
        return (self.service or {}).get("id")

    @property
    def schedule_id(self) -> str | None:
        return (self.schedule or {}).get("id")


_SHOWN_ACTORS = [
    ("_include", "Appointment:actor:HealthcareService"),
    ("_include", "Appointment:actor:Location"),
]
"""The actors an AppointmentView shows beyond their display: each included actor costs the
API a read, and the patient and the clinician's role are not needed."""


_NOT_SHOWN = ("proposed", "entered-in-error")
"""Appointment statuses the portal never shows: a proposal is not the patient's yet."""


def _mine(appointment_id: str, api: PortalApi) -> list[tuple[str, str]]:
    return [("_id", appointment_id), ("patient", f"Patient/{patient_of(api)}")]


async def own_appointment(api: PortalApi, appointment_id: str) -> Resource:
    """One of the patient's Appointments, without what it refers to; NotFound otherwise."""
    bundle = await api.search("Appointment", _mine(appointment_id, api))
    for found in entries(bundle, "Appointment"):
        if found.get("status") not in _NOT_SHOWN:
            return found
    raise NotFound(appointment_id)


def view_in(appointment: Resource, place: Clinic) -> AppointmentView | None:
    """The appointment described by its service's clinic; None when the clinic cannot say all
    of it (another service or place, or the clinician's Schedule is not an active one)."""
    if place.service_id not in actor_ids(appointment, "HealthcareService"):
        return None
    roles = actor_ids(appointment, "PractitionerRole")
    schedule = next(
        (s for s in place.schedules if roles and roles[0] in actor_ids(s, "PractitionerRole")),
        None,
    )
    locations = actor_ids(appointment, "Location")
    location = place.location if locations else None
    if schedule is None or (locations and (location or {}).get("id") != locations[0]):
        return None
    return AppointmentView(appointment, place.service, location, schedule, zone_of(location))


def _views(bundle: Resource) -> list[AppointmentView]:
    """Appointments with their included services and places (a booked Slot is not the
    patient's to read, so the Schedule is looked up by its actors where it is needed)."""
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in entries(bundle) if r.get("id")}
    views = []
    for appointment in entries(bundle, "Appointment"):
        if appointment.get("status") in _NOT_SHOWN:
            continue
        service = next(
            (
                by_ref.get(f"HealthcareService/{i}")
                for i in actor_ids(appointment, "HealthcareService")
            ),
            None,
        )
        location = next(
            (by_ref.get(f"Location/{i}") for i in actor_ids(appointment, "Location")), None
        )
        views.append(AppointmentView(appointment, service, location, None, zone_of(location)))
    return views


async def appointment(api: PortalApi, appointment_id: str) -> AppointmentView:
    """One of the patient's Appointments with its Schedule (for the cut-off and for choosing
    a new time); NotFound for any other id (the server answers as if it did not exist).

    One search: the clinician's PractitionerRole is included, and from it (`:iterate`)
    the Schedules naming that role, of which the one for the same service is kept.
    """
    bundle = await api.search(
        "Appointment",
        [
            *_mine(appointment_id, api),
            *_SHOWN_ACTORS,
            ("_include", "Appointment:actor:PractitionerRole"),
            ("_revinclude:iterate", "Schedule:actor:PractitionerRole"),
        ],
    )
    views = _views(bundle)
    if not views:
        raise NotFound(appointment_id)
    view = views[0]
    roles = actor_ids(view.appointment, "PractitionerRole")
    services = set(actor_ids(view.appointment, "HealthcareService"))
    view.schedule = next(
        (
            s
            for s in entries(bundle, "Schedule")
            if roles
            and roles[0] in actor_ids(s, "PractitionerRole")
            and services <= set(actor_ids(s, "HealthcareService"))
        ),
        None,
    )
    return view


async def my_appointments(
    api: PortalApi, now: datetime
) -> tuple[list[AppointmentView], list[AppointmentView]]:
    """Upcoming (soonest first) and past (latest first) Appointments of the patient."""
    bundle = await api.search(
        "Appointment",
        [
            ("patient", f"Patient/{patient_of(api)}"),
            ("_sort", "date"),
            ("_count", "200"),
            *_SHOWN_ACTORS,
        ],
    )
    views = _views(bundle)
    upcoming = [v for v in views if _upcoming(v, now)]
    past = [v for v in views if not _upcoming(v, now)]
    past.reverse()
    return upcoming, past


def _upcoming(view: AppointmentView, now: datetime) -> bool:
    return is_upcoming(view.appointment, now)


async def cancel(api: PortalApi, view: AppointmentView, reason: str) -> Resource:
    text = reason.strip() or "Cancelled by the patient online"
    cancelled = {**view.appointment, "status": "cancelled", "cancelationReason": {"text": text}}
    return await update(api, cancelled)


def utc_now() -> datetime:
    return datetime.now(UTC)
