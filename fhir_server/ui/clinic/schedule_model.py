"""What the schedule and requests pages show, worked out from FHIR resources: pure, no I/O,
no clock (`now` is passed in).

A clinician is a PractitionerRole with a Schedule (Appointments booked through the engine
name the PractitionerRole); their time zone is their Location's (else the Schedule's). A day
or week is a table: one row per start time, one column per clinician (a day) or per day (a
week); each cell lists the visits starting then. Status words are gettext message ids
(`N_`), translated by the templates, so status is always written, never only coloured.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.fhir.instants import parse_instant
from fhir_server.ui.portal.booking_model import (
    HOLD_EXPIRES,
    N_,
    LocalTime,
    actor_ids,
    extension_value,
    name_of,
    reference_id,
    zone_of,
)

Resource = dict[str, Any]

# FHIR appointmentstatus -> what the clinic's staff read.
STATUS_WORDS = {
    "pending": N_("Waiting for confirmation"),
    "booked": N_("Booked"),
    "arrived": N_("Arrived"),
    "checked-in": N_("Arrived"),
    "fulfilled": N_("Completed"),
    "noshow": N_("No-show"),
}
HIDDEN = ("proposed", "cancelled", "entered-in-error", "waitlist")
"""Statuses left off a schedule: nothing happens at that time."""
OUTCOMES = {"arrived": N_("Arrived"), "fulfilled": N_("Completed"), "noshow": N_("No-show")}
"""The statuses a schedule row can record, and their buttons' words."""
_TONES = {"arrived": "tag--green", "checked-in": "tag--green", "fulfilled": "tag--green"}
_TONES["noshow"] = "tag--grey"
_NEXT = {"booked": ("arrived", "noshow"), "arrived": ("fulfilled",), "checked-in": ("fulfilled",)}


@dataclass(frozen=True)
class Clinician:
    """A PractitionerRole that has a Schedule: a column of the day, a choice in the picker."""

    ref: str  # PractitionerRole/<id>
    name: str
    practitioner: str | None  # Practitioner/<id>
    zone: ZoneInfo


@dataclass(frozen=True)
class Visit:
    """One Appointment as a schedule row shows it."""

    id: str
    version: str
    clinician: str | None  # the PractitionerRole it is booked with
    clinician_name: str
    patient: str
    service: str
    status: str
    start: LocalTime
    end: LocalTime
    actions: tuple[str, ...]  # statuses the row offers (OUTCOMES keys)
    flagged: bool  # still booked after its end: nobody recorded what happened

    @property
    def words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)

    @property
    def tone(self) -> str:
        """The status tag's colour class: a second cue beside the words, never the only one."""
        return _TONES.get(self.status, "")


def clinicians(bundle_entries: Iterable[Resource]) -> list[Clinician]:
    """The clinicians of a `Schedule?_include=Schedule:actor&_include:iterate=
    PractitionerRole:practitioner` search, by name."""
    resources = list(bundle_entries)
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources if r.get("id")}
    found: dict[str, Clinician] = {}
    for schedule in (r for r in resources if r.get("resourceType") == "Schedule"):
        locations = [by_ref.get(f"Location/{i}") for i in actor_ids(schedule, "Location")]
        for role_id in actor_ids(schedule, "PractitionerRole"):
            ref = f"PractitionerRole/{role_id}"
            role = by_ref.get(ref) or {}
            practitioner_id = reference_id(role.get("practitioner"), "Practitioner")
            practitioner = by_ref.get(f"Practitioner/{practitioner_id}")
            name = name_of(practitioner) or _schedule_display(schedule, ref) or role_id
            person = f"Practitioner/{practitioner_id}" if practitioner_id else None
            found.setdefault(ref, Clinician(ref, name, person, zone_of(*locations, schedule)))
    return sorted(found.values(), key=lambda c: (c.name.casefold(), c.ref))


def _schedule_display(resource: Resource, ref: str) -> str:
    for actor in resource.get("actor", []):
        if actor.get("reference") == ref and actor.get("display"):
            return str(actor["display"])
    return ""


def own(all_clinicians: list[Clinician], fhir_user: str | None) -> list[Clinician]:
    """The clinicians a practitioner acts as (their PractitionerRoles); `fhir_user` is their
    Practitioner's reference or full URL."""
    me = reference_id({"reference": fhir_user}, "Practitioner")
    return [c for c in all_clinicians if me and c.practitioner == f"Practitioner/{me}"]


def visits(
    bundle_entries: Iterable[Resource], names: dict[str, str], zone: ZoneInfo, now: datetime
) -> list[Visit]:
    """The Appointments of an `Appointment?_include=Appointment:actor` search that a schedule
    shows (holds and cancelled ones left off), soonest first; `names` names the clinicians."""
    resources = list(bundle_entries)
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources if r.get("id")}
    found = []
    for appointment in (r for r in resources if r.get("resourceType") == "Appointment"):
        status = str(appointment.get("status"))
        if (
            status in HIDDEN
            or extension_value(appointment, HOLD_EXPIRES)
            or not appointment.get("start")
        ):
            continue
        found.append(_visit(appointment, by_ref, names, zone, now))
    return sorted(found, key=lambda v: (v.start.moment, v.clinician_name, v.id))


def _visit(
    appointment: Resource,
    by_ref: dict[str, Resource],
    names: dict[str, str],
    zone: ZoneInfo,
    now: datetime,
) -> Visit:
    status = str(appointment.get("status"))
    start = parse_instant(str(appointment["start"]))
    end = parse_instant(str(appointment.get("end") or appointment["start"]))
    started, ended = start <= now, end <= now
    actions = tuple(s for s in _NEXT.get(status, ()) if s != "noshow" or started)
    actors = _actors(appointment)  # one pass over the participants: a week has hundreds
    clinician = actors.get("PractitionerRole")
    patient = by_ref.get(actors.get("Patient", ""))
    return Visit(
        id=str(appointment["id"]),
        version=str(appointment.get("meta", {}).get("versionId", "")),
        clinician=clinician,
        clinician_name=names.get(clinician or "", "") or _display(actors, "PractitionerRole"),
        patient=name_of(patient) or _display(actors, "Patient"),
        service=_service(appointment, by_ref.get(actors.get("HealthcareService", "")), actors),
        status=status,
        start=_local(start, zone),
        end=_local(end, zone),
        actions=actions,
        flagged=status == "booked" and ended,
    )


def _local(moment: datetime, zone: ZoneInfo) -> LocalTime:
    here = moment.astimezone(zone)
    return LocalTime(here.date(), here)


def _actors(appointment: Resource) -> dict[str, str]:
    """Type -> the first participant's reference of that type (`Type/id`), and its display
    under `Type#display`."""
    found: dict[str, str] = {}
    for participant in appointment.get("participant", []):
        actor = participant.get("actor") or {}
        kind, _, rid = str(actor.get("reference", "")).rpartition("/")
        kind = kind.rpartition("/")[2]
        if rid and kind not in found:
            found[kind] = f"{kind}/{rid}"
            if actor.get("display"):
                found[f"{kind}#display"] = str(actor["display"])
    return found


def _display(actors: dict[str, str], resource_type: str) -> str:
    return actors.get(f"{resource_type}#display", "")


def _service(appointment: Resource, service: Resource | None, actors: dict[str, str]) -> str:
    """The service booked: the Appointment's serviceType, else its HealthcareService's name."""
    for concept in appointment.get("serviceType", []):
        text = concept.get("text") or next(
            (c.get("display") for c in concept.get("coding", []) if c.get("display")), None
        )
        if text:
            return str(text)
    return name_of(service) or _display(actors, "HealthcareService")


@dataclass(frozen=True)
class Row:
    """One start time of a table and, per column, the visits starting then."""

    time: str
    cells: list[list[Visit]]


def table(
    all_visits: Iterable[Visit], columns: list[Hashable], column_of: Callable[[Visit], Hashable]
) -> list[Row]:
    """Rows by start time (local clock) and one cell per column; visits of no column are left
    off (another clinician's, another day's)."""
    index = {key: n for n, key in enumerate(columns)}
    rows: dict[str, list[list[Visit]]] = {}
    for visit in all_visits:
        column = index.get(column_of(visit))
        if column is None:
            continue
        cells = rows.setdefault(visit.start.clock, [[] for _ in columns])
        cells[column].append(visit)
    return [Row(time, rows[time]) for time in sorted(rows)]


def day_of(visit: Visit) -> date:
    return visit.start.date


def clinician_of(visit: Visit) -> str | None:
    return visit.clinician


def waiting(appointment: Resource) -> list[str]:
    """The providers whose answer a pending (not held) Appointment waits for."""
    return [
        str(p["actor"]["reference"])
        for p in appointment.get("participant", [])
        if p.get("status") == "needs-action"
        and str(p.get("actor", {}).get("reference", "")).startswith(
            ("Practitioner/", "PractitionerRole/")
        )
    ]


def answered(appointment: Resource, accept: bool, reason: str) -> Resource:
    """The Appointment with every provider's answer given: all accept (the engine books it),
    or one declines with `reason` (cancelled, the reason kept as its cancelationReason)."""
    pending = set(waiting(appointment))
    if accept:
        answer = {ref: "accepted" for ref in pending}
    else:
        answer = {sorted(pending)[0]: "declined"} if pending else {}
    participants = [
        {**p, "status": answer[p["actor"]["reference"]]}
        if p.get("actor", {}).get("reference") in answer
        else p
        for p in appointment.get("participant", [])
    ]
    body = {**appointment, "participant": participants}
    if accept:
        return body
    # FHIR allows a cancelationReason on a cancelled Appointment only (app-4): the decline
    # cancels it in the same write, and the engine announces it as declined.
    return {**body, "status": "cancelled", "cancelationReason": {"text": reason}}
