"""An owner's appointments as one RFC 5545 calendar (a subscribable feed).

Each Appointment is a VEVENT with the UID and SEQUENCE its e-mailed
invitation carries (`notifications.ical`), so a change moves the event and a
cancellation marks it CANCELLED rather than leaving a stale one. Times are
written in the clinic's zone (the Appointment's Location's timezone
extension, else the clinic setting) with TZID, and the calendar carries the
matching VTIMEZONE components, so DST days show the right hours everywhere.

What an event says: the kind of appointment, the Location, and for a
patient's own feed the practitioner. A practitioner's feed names the patient
only when the clinic allows it (`patient_names`); a note or description is
never copied (it may hold clinical text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.fhir.instants import parse_instant
from fhir_server.notifications.ical import event_of, new_calendar, sequence_of, uid_of

_STATUS = {
    "booked": "CONFIRMED",
    "arrived": "CONFIRMED",
    "checked-in": "CONFIRMED",
    "fulfilled": "CONFIRMED",
    "pending": "TENTATIVE",
    "proposed": "TENTATIVE",
    "waitlist": "TENTATIVE",
    "cancelled": "CANCELLED",
    "noshow": "CANCELLED",
}
# How often a calendar app is asked to look again (RFC 7986 and the common X- twin).
REFRESH = timedelta(minutes=15)


def _text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    coding: dict[str, Any] = next(iter(concept.get("coding") or []), {})
    text = concept.get("text") or coding.get("display")
    return str(text) if text else None


def _participant(appointment: dict[str, Any], *types: str) -> dict[str, Any]:
    for participant in appointment.get("participant") or []:
        actor = participant.get("actor") or {}
        if str(actor.get("reference", "")).split("/")[0] in types:
            return dict(actor)
    return {}


def kind_of(appointment: dict[str, Any]) -> str:
    """What sort of appointment it is, in words (never its description or comment)."""
    service = next(iter(appointment.get("serviceType") or []), None)
    return _text(appointment.get("appointmentType")) or _text(service) or "Appointment"


def summary(appointment: dict[str, Any], owner_type: str, patient_names: bool) -> str:
    kind = kind_of(appointment)
    if owner_type == "Patient":
        with_whom = _participant(appointment, "Practitioner", "PractitionerRole").get("display")
        return f"{kind} with {with_whom}" if with_whom else kind
    patient = _participant(appointment, "Patient").get("display")
    return f"{kind}: {patient}" if patient_names and patient else kind


def feed(
    appointments: Iterable[dict[str, Any]],
    *,
    owner_type: str,
    zones: Mapping[str, ZoneInfo],
    fallback: ZoneInfo,
    patient_names: bool,
    stamp: datetime,
) -> bytes:
    """The VCALENDAR of an owner's appointments; `zones` maps Location references to zones."""
    calendar = new_calendar(
        calscale="GREGORIAN",
        x_wr_calname="Clinic appointments",
        refresh_interval=REFRESH,
        x_published_ttl="PT15M",
    )
    for appointment in appointments:
        status = _STATUS.get(str(appointment.get("status")))
        if status is None or not appointment.get("start"):
            continue  # entered-in-error, or not placed in time yet
        location = _participant(appointment, "Location")
        zone = zones.get(str(location.get("reference")), fallback)
        end = appointment.get("end")
        updated = (appointment.get("meta") or {}).get("lastUpdated")
        event = event_of(
            uid=uid_of(appointment, None),
            sequence=sequence_of(appointment, None),
            start=parse_instant(appointment["start"]).astimezone(zone),
            end=parse_instant(end).astimezone(zone) if end else None,
            summary=summary(appointment, owner_type, patient_names),
            location=location.get("display"),
            stamp=parse_instant(updated) if updated else stamp,
            status=status,
        )
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())
