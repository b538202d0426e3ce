"""A day's list per clinician, made to be printed (`@media print` in portal.css: one
clinician a sheet, no header, menu or forms).

Two FHIR searches give the page: the day's Appointments with their actors
(`_include=Appointment:actor`: patients, clinicians, services, places), and
the clinicians' Schedules for their names (as the booking pages show them). The
window asked for is the day widened by 14 hours each way, then each
Appointment is kept when it falls on that calendar day in its own Location's
time zone, so two sites in different zones each get their own day.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.fhir.instants import fhir_instant
from fhir_server.ui.clinic.desk import Desk
from fhir_server.ui.clinic.desk_patients import PatientRow, row_of
from fhir_server.ui.fhir_api import PortalApi, entries
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.portal.booking_model import (
    CalendarDay,
    LocalTime,
    Resource,
    actor_display,
    actor_ids,
    day_bounds,
    local,
    name_of,
    parse_day,
    status_words,
    zone_of,
)
from fhir_server.ui.web import FieldError

router = APIRouter()

LISTED = "booked,pending,arrived,checked-in,fulfilled,noshow"
_WIDEST_OFFSET = timedelta(hours=14)  # UTC-12 to UTC+14: every zone's day lies inside


@dataclass(frozen=True)
class Row:
    start: LocalTime
    end: LocalTime
    patient: PatientRow | None
    service: str
    status: str  # a message id (booking_model.STATUS_WORDS)
    appointment_id: str


@dataclass(frozen=True)
class ClinicianDay:
    clinician_id: str
    name: str
    rows: list[Row]


async def day_lists(api: PortalApi, day: date) -> list[ClinicianDay]:
    """Each clinician's Appointments on `day` (their Location's calendar day), by time."""
    first, last = day_bounds(day, zone_of())
    bundle = await api.search(
        "Appointment",
        [
            ("date", f"ge{fhir_instant(first - _WIDEST_OFFSET)}"),
            ("date", f"lt{fhir_instant(last + _WIDEST_OFFSET)}"),
            ("status", LISTED),
            ("_include", "Appointment:actor"),
            ("_sort", "date"),
            ("_count", "1000"),
        ],
    )
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in entries(bundle)}
    lists: dict[str, ClinicianDay] = {}
    for appointment in entries(bundle, "Appointment"):
        places = [by_ref.get(f"Location/{i}") for i in actor_ids(appointment, "Location")]
        zone = zone_of(*places)
        start = local(str(appointment["start"]), zone)
        if start.date != day:
            continue
        patient = _included(by_ref, appointment, "Patient")
        service = _included(by_ref, appointment, "HealthcareService")
        row = Row(
            start,
            local(str(appointment.get("end") or appointment["start"]), zone),
            row_of(patient) if patient else None,
            name_of(service) or actor_display(appointment, "HealthcareService"),
            status_words(appointment),
            str(appointment["id"]),
        )
        role = next(iter(actor_ids(appointment, "PractitionerRole")), "")
        lists.setdefault(role, ClinicianDay(role, "", [])).rows.append(row)
    names = await _clinician_names(api, [r for r in lists if r])
    named = [replace(c, name=names.get(c.clinician_id, "")) for c in lists.values()]
    return sorted(named, key=lambda c: (not c.clinician_id, c.name.casefold()))


async def _clinician_names(api: PortalApi, roles: list[str]) -> dict[str, str]:
    """Each PractitionerRole's name as its Schedules give it (the booking pages' names for
    the same clinicians): one search for all of them."""
    if not roles:
        return {}
    refs = ",".join(f"PractitionerRole/{r}" for r in roles)
    bundle = await api.search("Schedule", {"actor": refs, "_count": "200"})
    names: dict[str, str] = {}
    for schedule in entries(bundle, "Schedule"):
        for role in actor_ids(schedule, "PractitionerRole"):
            names.setdefault(role, actor_display(schedule, "PractitionerRole"))
    return names


def _included(
    by_ref: dict[str, Resource], appointment: Resource, resource_type: str
) -> Resource | None:
    """The first actor of a type that the search included."""
    found = (by_ref.get(f"{resource_type}/{i}") for i in actor_ids(appointment, resource_type))
    return next((r for r in found if r), None)


@router.get("/desk/day")
async def day_page(page: Desk, request: Request) -> Response:
    """`?day=YYYY-MM-DD` (default today, UTC) and `clinician=<PractitionerRole id>` to print
    one clinician's list alone."""
    today = pages.utc_now().date()
    asked = request.query_params.get("day")
    day = parse_day(asked) or today
    bad = bool(asked) and parse_day(asked) is None
    errors = [FieldError(page._("Enter the day as a real date"), "day")] if bad else []
    lists = await day_lists(page.api, day)
    clinician = request.query_params.get("clinician") or ""
    shown = [c for c in lists if c.clinician_id == clinician] if clinician else lists
    named = CalendarDay(day)
    return page.render(
        "clinic/desk_day.html",
        title=page._("Day list for %(date)s")
        % {"date": f"{page._(named.weekday)} {named.day} {page._(named.month)} {named.year}"},
        status=400 if errors else 200,
        errors=errors,
        day=day.isoformat(),
        previous_day=(day - timedelta(days=1)).isoformat(),
        next_day=(day + timedelta(days=1)).isoformat(),
        clinicians=[(c.clinician_id, c.name) for c in lists],
        clinician=clinician,
        lists=shown,
        day_of=CalendarDay(day),
    )
