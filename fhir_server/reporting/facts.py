"""What one stored version adds to the report rollups (pure: no I/O, no clock).

Every Appointment, Slot and delivered reminder is folded, version after
version, into one `Item` per resource: what the resource currently
contributes (its `Cell`: the day it falls on, its dimensions, its counters)
and the little it must remember across versions (when it was booked and
cancelled, its channel, whether a reminder reached the patient). The rollups
are the sums of the cells, so a new version moves an appointment from its old
cell to its new one, and folding an older or equal version again changes
nothing (`Item.version`).

An Appointment counts once it has been booked: a version that is not a
`$hold` in a booked, pending or outcome status, or, for an EHR's record of
the past, a first version already cancelled. Holds that lapse, proposals and
`entered-in-error` count nowhere; a deleted Appointment leaves the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.fhir.resource import Resource
from fhir_server.reporting.channel import DEFAULT_CHANNEL, channel_in, patient_initiated

# FHIR R5's Appointment.cancellationDate carried in R4 (the cross-version extension): when
# an EHR syncs a cancelled appointment, the time it was cancelled.
CANCELLATION_DATE: Final = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.cancellationDate"
)
HOLD_EXPIRES: Final = (
    "https://clinic-booking.example.org/fhir/StructureDefinition/booking-hold-expires"
)
COUNTED: Final = ("pending", "booked", "arrived", "checked-in", "fulfilled", "noshow")
"""Statuses in which a version that is not a hold makes the Appointment count as booked."""
UNKNOWN: Final = "unknown"
NONE: Final = "none"
TNA_HORIZON_DAYS: Final = 366
"""How far ahead of a week's measuring instant a free Slot counts for third next available."""
# Lead times and cancellation notices are kept to these caps (the last value means "or more").
MAX_LEAD_DAYS: Final = 366
MAX_NOTICE_HOURS: Final = 168
AGE_BANDS: Final = (
    (0, "0-17"),
    (18, "18-29"),
    (30, "30-44"),
    (45, "45-64"),
    (65, "65-74"),
    (75, "75+"),
)

# The reference types behind each subject dimension.
_SUBJECT_TYPES: Final = {
    "Practitioner": "practitioner",
    "PractitionerRole": "practitioner",
    "Location": "location",
    "HealthcareService": "service",
}

Dims = dict[str, list[str]]
Counters = dict[str, int]


@dataclass(frozen=True)
class Cell:
    """Where a resource counts: the local day, the dimension values, the counters added."""

    day: str
    dims: Dims
    counters: Counters

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "dims": self.dims, "counters": self.counters}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Cell | None:
        return None if data is None else cls(data["day"], data["dims"], data["counters"])


@dataclass(frozen=True)
class Item:
    """One resource's state in the reports (a row of `report_items`)."""

    key: str  # Type/id
    version: int = 0
    cell: Cell | None = None
    counted: bool = False
    status: str | None = None
    channel: str | None = None
    booked_at: str | None = None
    cancelled_at: str | None = None
    reminded: bool = False
    base: Counters = field(default_factory=dict)  # the counters before the reminder's
    patient: str | None = None  # an Appointment: its patient's id while it counts somewhere
    since: str | None = None  # a Slot: when its current version was written
    # A free Slot: the weeks (Monday, measuring instant) it counts in for third next available
    # while its current version lasts.
    weeks: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "_id": self.key,
            "version": self.version,
            "cell": self.cell.to_json() if self.cell else None,
            "counted": self.counted,
            "status": self.status,
            "channel": self.channel,
            "booked_at": self.booked_at,
            "cancelled_at": self.cancelled_at,
            "reminded": self.reminded,
            "base": self.base,
            "patient": self.patient,
            "since": self.since,
            "weeks": self.weeks,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(
            key=data["_id"],
            version=data["version"],
            cell=Cell.from_json(data.get("cell")),
            counted=data["counted"],
            status=data.get("status"),
            channel=data.get("channel"),
            booked_at=data.get("booked_at"),
            cancelled_at=data.get("cancelled_at"),
            reminded=data.get("reminded", False),
            base=data.get("base") or {},
            patient=data.get("patient"),
            since=data.get("since"),
            weeks=tuple((monday, at) for monday, at in data.get("weeks") or ()),
        )


def local_day(instant: str, zone: ZoneInfo) -> date:
    return parse_instant(instant).astimezone(zone).date()


def age_band(birth: str | None, on: date) -> str:
    """The patient's age band on the day of the appointment."""
    if not birth or len(birth) < 4:
        return UNKNOWN
    try:
        born = date.fromisoformat(birth) if len(birth) == 10 else date(int(birth[:4]), 7, 1)
    except ValueError:
        return UNKNOWN
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    band = UNKNOWN
    for low, name in AGE_BANDS:
        if age >= low:
            band = name
    return band


def postal_district(patient: Resource | None) -> str:
    """The outward part of the first postal code (before a space), else its first 3 characters."""
    for address in (patient or {}).get("address") or []:
        code = str(address.get("postalCode") or "").strip().upper()
        if code:
            return code.split()[0] if " " in code else code[:3]
    return UNKNOWN


def demographics(patient: Resource | None, on: date) -> Dims:
    return {
        "age-band": [age_band((patient or {}).get("birthDate"), on)],
        "gender": [str((patient or {}).get("gender") or UNKNOWN)],
        "postal-district": [postal_district(patient)],
    }


def subjects(references: list[str]) -> Dims:
    """The practitioner, location and service dimensions of a list of references."""
    dims: Dims = {"practitioner": [], "location": [], "service": []}
    for reference in references:
        kind = _SUBJECT_TYPES.get(reference.partition("/")[0])
        if kind and reference not in dims[kind]:
            dims[kind].append(reference)
    return dims


def patient_of(appointment: Resource) -> str | None:
    for reference in _actors(appointment):
        if reference.startswith("Patient/"):
            return reference
    return None


def _actors(appointment: Resource) -> list[str]:
    return [
        str((p.get("actor") or {}).get("reference"))
        for p in appointment.get("participant") or []
        if isinstance(p, dict) and (p.get("actor") or {}).get("reference")
    ]


def appointment_type(appointment: Resource) -> str:
    concept = appointment.get("appointmentType") or {}
    for coding in concept.get("coding") or []:
        if coding.get("code"):
            return str(coding["code"])
    return str(concept.get("text") or UNKNOWN)


def _extension(resource: Resource, url: str, field: str) -> str | None:
    for extension in resource.get("extension") or []:
        if extension.get("url") == url and extension.get(field):
            return str(extension[field])
    return None


def _moment(value: str | None) -> str | None:
    """A dateTime as an instant (a date alone is its midnight UTC); None if less precise."""
    if value is None or len(value) < 10:
        return None
    return f"{value}T00:00:00Z" if len(value) == 10 else value


def _is_hold(appointment: Resource) -> bool:
    return any(e.get("url") == HOLD_EXPIRES for e in appointment.get("extension") or [])


def _days_between(earlier: str, later: str, zone: ZoneInfo) -> int:
    return (local_day(later, zone) - local_day(earlier, zone)).days


def fold_appointment(
    item: Item,
    version: int,
    updated: str,
    appointment: Resource | None,
    patient: Resource | None,
    zone: ZoneInfo,
) -> Item:
    """The item after this version (the same item for a version already folded)."""
    if version <= item.version:
        return item
    if appointment is None:  # deleted
        return replace(item, version=version, cell=None, status=None, base={}, patient=None)
    status = str(appointment.get("status"))
    first = item.version == 0
    counted = item.counted or (
        (status in COUNTED and not _is_hold(appointment)) or (first and status == "cancelled")
    )
    booked_at = item.booked_at
    if counted and booked_at is None:
        booked_at = str(appointment.get("created") or updated)
    cancelled_at = None
    if status == "cancelled":
        cancelled_at = item.cancelled_at if item.status == "cancelled" else None
        if cancelled_at is None:
            cancelled_at = _moment(_extension(appointment, CANCELLATION_DATE, "valueDateTime"))
        if cancelled_at is None and not first:
            cancelled_at = updated
    item = replace(
        item,
        version=version,
        counted=counted,
        status=status,
        channel=item.channel or channel_in(appointment) or DEFAULT_CHANNEL,
        booked_at=booked_at,
        cancelled_at=cancelled_at,
    )
    start = appointment.get("start")
    if not counted or status not in (*COUNTED, "cancelled") or not start:
        return replace(item, cell=None, base={}, patient=None)
    day = local_day(str(start), zone)
    dims = {
        **subjects(_actors(appointment)),
        "appointment-type": [appointment_type(appointment)],
        **demographics(patient, day),
    }
    base = {"booked": 1, f"status:{status}": 1, f"channel:{item.channel}": 1}
    if booked_at is not None:
        lead = max(0, min(MAX_LEAD_DAYS, _days_between(booked_at, str(start), zone)))
        base[f"lead:{lead}"] = 1
    if status == "cancelled":
        side = "patient" if patient_initiated(appointment) else "clinic"
        notice = UNKNOWN
        if cancelled_at is not None:
            hours = (
                parse_instant(str(start)) - parse_instant(cancelled_at)
            ).total_seconds() // 3600
            notice = str(int(max(0, min(MAX_NOTICE_HOURS, hours))))
        base[f"cancel:{side}:{notice}"] = 1
    patient_ref = patient_of(appointment)
    item = replace(item, base=base, patient=patient_ref.partition("/")[2] if patient_ref else None)
    return replace(item, cell=Cell(day.isoformat(), dims, counters_of(item)))


@dataclass(frozen=True)
class Visits:
    """One patient's counted appointments (a row of `report_items`, `_id` `Patient/<id>`):
    the cell of each, by its item key. What the patient adds to the patient tables is a
    function of these alone (`rollups.add_patient`)."""

    key: str  # Patient/id
    cells: dict[str, Cell] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"_id": self.key, "cells": {k: c.to_json() for k, c in self.cells.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Visits:
        cells = {k: Cell(c["day"], c["dims"], c["counters"]) for k, c in data["cells"].items()}
        return cls(data["_id"], cells)


def chain(days: dict[str, int]) -> dict[str, Counters]:
    """A patient's counters in one rollup row, by day, from their appointments by day there:
    `booked` (the appointments), and for the day's place among the patient's booking days
    in the row, the previous one (`pv:<date>` and its month `pm:<YYYY-MM>`) and the next
    (`nx:<date>`), `none` when there is none. A patient is counted once in a period at their
    first booking day in it: the one whose previous day falls before the period."""
    ordered = sorted(days)
    out: dict[str, Counters] = {}
    for n, day in enumerate(ordered):
        before = ordered[n - 1] if n else None
        after = ordered[n + 1] if n + 1 < len(ordered) else None
        out[day] = {
            "booked": days[day],
            f"pv:{before or NONE}": 1,
            f"pm:{before[:7] if before else NONE}": 1,
            f"nx:{after or NONE}": 1,
        }
    return out


def counters_of(item: Item) -> Counters:
    """The item's counters: its base ones, and `reminded:{status}` once a reminder reached
    the patient."""
    counters = dict(item.base)
    if item.reminded and item.status:
        counters[f"reminded:{item.status}"] = 1
    return counters


def fold_reminder(item: Item) -> Item:
    """The appointment's item once a reminder was delivered to its patient."""
    if item.reminded:
        return item
    item = replace(item, reminded=True)
    if item.cell is None:
        return item
    return replace(item, cell=replace(item.cell, counters=counters_of(item)))


def delivered_reminder(communication: Resource) -> str | None:
    """The Appointment id a Communication delivered a reminder about to its patient, else None."""
    if communication.get("status") != "completed":
        return None
    codes = [
        str(c.get("code", ""))
        for concept in communication.get("category") or []
        for c in concept.get("coding") or []
    ]
    recipients = [str(r.get("reference", "")) for r in communication.get("recipient") or []]
    if not any(code.startswith("reminder") for code in codes):
        return None
    if not any(r.startswith("Patient/") for r in recipients):
        return None
    for about in communication.get("about") or []:
        reference = str(about.get("reference", ""))
        if reference.startswith("Appointment/"):
            return reference.split("/")[1]
    return None


def fold_slot(
    item: Item,
    version: int,
    updated: str,
    slot: Resource | None,
    schedule: Resource | None,
    zone: ZoneInfo,
) -> Item:
    """A Slot's item after this version (written at `updated`): its minutes by status on its
    day, under the practitioner, location and service its Schedule names; and, while it is
    free, the weeks whose measuring instant falls from `updated` on (`measured_weeks`)."""
    if version <= item.version:
        return item
    if slot is None or not slot.get("start") or not slot.get("end"):
        return replace(item, version=version, cell=None, since=updated, weeks=())
    start, end = parse_instant(str(slot["start"])), parse_instant(str(slot["end"]))
    minutes = max(0, int((end - start).total_seconds() // 60))
    status = str(slot.get("status"))
    actors = [str(a.get("reference", "")) for a in (schedule or {}).get("actor") or []]
    schedule_ref = str((slot.get("schedule") or {}).get("reference", ""))
    dims = {**subjects(actors), "schedule": [schedule_ref]}
    counters = {f"slot:{status}": 1, f"slot-min:{status}": minutes}
    day = start.astimezone(zone).date()
    weeks = measured_weeks(day, parse_instant(updated), zone) if status == "free" else ()
    return replace(
        item,
        version=version,
        status=status,
        cell=Cell(day.isoformat(), dims, counters),
        since=updated,
        weeks=weeks,
    )


@lru_cache(maxsize=4096)
def measuring_instant(monday: date, zone: ZoneInfo) -> tuple[datetime, str]:
    """When third next available is measured for the week of `monday` (its local midnight),
    and that as an instant's text (cached: a rebuild asks for each week again and again)."""
    at = datetime.combine(monday, time(), zone)
    return at, fhir_instant(at)


def measured_weeks(day: date, since: datetime, zone: ZoneInfo) -> tuple[tuple[str, str], ...]:
    """The weeks a free Slot on local `day`, free from `since` on, counts in: those whose
    measuring instant is at or after `since`, on or before the Slot's day, and less than
    `TNA_HORIZON_DAYS` before it. Each as (Monday, measuring instant)."""
    monday = day - timedelta(days=day.weekday())
    weeks = []
    while (day - monday).days < TNA_HORIZON_DAYS:
        at, text = measuring_instant(monday, zone)
        if at < since:
            break
        weeks.append((monday.isoformat(), text))
        monday -= timedelta(days=7)
    return tuple(reversed(weeks))
