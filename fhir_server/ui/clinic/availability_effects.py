"""What saving hours or closures sets off, shared by the availability and closures pages:
regenerating the Slots of the Schedules concerned and listing the booked Appointments
that are now outside availability, each with a link to reschedule it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData

from fhir_server.ui.clinic.roles import ADMIN, FRONTDESK
from fhir_server.ui.fhir_api import PortalApi, PortalApiError, entries
from fhir_server.ui.portal.booking_model import (
    LocalTime,
    local,
    name_of,
    reference_id,
    status_words,
)
from fhir_server.ui.portal.booking_pages import update, utc_now
from fhir_server.ui.web import SignedInPage

Resource = dict[str, Any]

RESCHEDULERS = frozenset({FRONTDESK, ADMIN})
HORIZON_DAYS = 28
"""How far ahead a save regenerates Slots at least: the rolling job's horizon
(notifications.tasks). A Schedule whose Slots were made further ahead (`fhir-server
generate-slots --days 90`) is regenerated up to its last Slot, so no time beyond the
horizon is left bookable under the old hours."""


def version_of(resource: Resource) -> str:
    """The version the form was built from; saving sends it back as `If-Match`."""
    return str(resource.get("meta", {}).get("versionId", ""))


def role_name(role: Resource) -> str:
    """A clinician's name as the PractitionerRole gives it (its practitioner's display)."""
    practitioner = role.get("practitioner") or {}
    return str(practitioner.get("display") or f"PractitionerRole/{role.get('id')}")


async def location_of(api: PortalApi, role: Resource) -> Resource | None:
    """The first Location a PractitionerRole works at: its time zone is the hours'."""
    for ref in role.get("location", []):
        location_id = reference_id(ref, "Location")
        if location_id:
            return await api.read("Location", location_id)
    return None


async def save(api: PortalApi, changed: Resource, form: FormData, actor: str) -> bool:
    """PUT `changed` (the stored resource with the form's edits) if it is still the version
    the form was built from (its `version` field, sent as `If-Match`), then regenerate the
    Slots `actor` takes part in; False when someone else saved it in between (nothing is
    written)."""
    if str(form.get("version", "")) != version_of(changed):
        return False
    try:
        await update(api, changed)
    except PortalApiError as refused:
        if refused.status in (409, 412):
            return False
        raise
    await regenerate(api, actor, utc_now())
    return True


async def schedules_of(api: PortalApi, actor: str) -> list[Resource]:
    """The Schedules `actor` (`Location/x`, `PractitionerRole/y`) takes part in."""
    bundle = await api.search("Schedule", [("actor", actor), ("_count", "200")])
    return entries(bundle, "Schedule")


async def _last_slot_start(api: PortalApi, schedule_id: str) -> datetime | None:
    """When the Schedule's last Slot starts (one search, latest first), None without any."""
    bundle = await api.search(
        "Slot",
        [
            ("schedule", f"Schedule/{schedule_id}"),
            ("_sort", "-start"),
            ("_count", "1"),
            ("_elements", "start"),
        ],
    )
    found = entries(bundle, "Slot")
    return datetime.fromisoformat(str(found[0]["start"])) if found else None


async def regenerate(api: PortalApi, actor: str, now: datetime) -> int:
    """`$generate-slots` for every Schedule `actor` takes part in, over the horizon or up
    to the Schedule's last Slot when that is further; the number of Schedules
    regenerated."""
    horizon = now + timedelta(days=HORIZON_DAYS)
    for schedule in (schedules := await schedules_of(api, actor)):
        last = await _last_slot_start(api, str(schedule["id"]))
        end = max(horizon, last + timedelta(days=1)) if last is not None else horizon
        window = [
            {"name": "start", "valueDateTime": now.isoformat(timespec="seconds")},
            {"name": "end", "valueDateTime": end.isoformat(timespec="seconds")},
        ]
        parameters = {"resourceType": "Parameters", "parameter": window}
        await api.operation(f"Schedule/{schedule['id']}/$generate-slots", parameters)
    return len(schedules)


@dataclass(frozen=True)
class Outside:
    """A booked Appointment now outside availability, as the pages list it."""

    start: LocalTime | None
    patient: str
    status: str
    reschedule: str | None


def _participants(appointment: Resource) -> set[str]:
    return {
        str((p.get("actor") or {}).get("reference", "")) for p in appointment.get("participant", [])
    }


async def outside(page: SignedInPage, actors: set[str], zone: ZoneInfo) -> list[Outside]:
    """The Appointments `$outside-availability` flags that one of `actors` takes part in,
    soonest first, with their patients' names (one search for all of them)."""
    bundle = await page.api.request("GET", "Appointment/$outside-availability")
    found = [a for a in entries(bundle, "Appointment") if _participants(a) & actors]
    found.sort(key=lambda a: str(a.get("start", "")))
    patient_ids = {
        pid
        for a in found
        for p in a.get("participant", [])
        if (pid := reference_id(p.get("actor"), "Patient"))
    }
    names: dict[str, str] = {}
    if patient_ids:
        params = [("_id", ",".join(sorted(patient_ids))), ("_count", str(len(patient_ids)))]
        patients = entries(await page.api.search("Patient", params), "Patient")
        names = {str(p["id"]): name_of(p) for p in patients}
    rows = []
    for appointment in found:
        pids = [reference_id(p.get("actor"), "Patient") for p in appointment["participant"]]
        patient = next((names.get(pid, "") for pid in pids if pid), "")
        start = appointment.get("start")
        rows.append(
            Outside(
                start=local(str(start), zone) if start else None,
                patient=patient,
                status=page._(status_words(appointment)),
                reschedule=reschedule_link(page, str(appointment["id"])),
            )
        )
    return rows


def reschedule_link(page: SignedInPage, appointment_id: str) -> str | None:
    """Where staff move an Appointment to another time: its front-desk page (`desk_*`
    modules), which offers "Change the time". Only the front desk and admins open it, so a
    practitioner gets no link (the page says the front desk moves it)."""
    if page.role not in RESCHEDULERS:
        return None
    return page.url(f"/appointments/{appointment_id}")
