"""The iCalendar attachment (RFC 5546 iTIP) that lets calendar apps track one event.

Booking sends METHOD:REQUEST; a reschedule sends REQUEST again with the same
UID and a higher SEQUENCE, so the calendar moves the event instead of adding
one; a cancellation or decline sends METHOD:CANCEL for that UID.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from icalendar import Calendar, Event, vCalAddress, vText

from fhir_server.store.clock import parse_instant


def uid_of(appointment: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """A reschedule into a new Appointment keeps the UID of the one it replaced."""
    origin = previous if previous and previous.get("id") != appointment.get("id") else appointment
    return f"{origin.get('id')}@clinic-booking"


def sequence_of(appointment: dict[str, Any], previous: dict[str, Any] | None) -> int:
    """Grows with every change: versions of this appointment, plus the replaced one's."""
    version = int(appointment.get("meta", {}).get("versionId", "1"))
    if previous and previous.get("id") != appointment.get("id"):
        version += int(previous.get("meta", {}).get("versionId", "1"))
    return version - 1


def new_calendar(**properties: object) -> Calendar:
    """An empty VCALENDAR of ours (PRODID, VERSION, then the given properties)."""
    calendar = Calendar()
    calendar.add("prodid", "-//fhir-server//clinic booking//EN")
    calendar.add("version", "2.0")
    for name, value in properties.items():
        calendar.add(name.replace("_", "-"), value)
    return calendar


def event_of(
    *,
    uid: str,
    sequence: int,
    start: datetime,
    end: datetime | None,
    summary: str,
    location: str | None,
    stamp: datetime,
    status: str,
) -> Event:
    """One appointment as a VEVENT (an invitation's and a calendar feed's alike)."""
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", start)
    if end:
        event.add("dtend", end)
    event.add("summary", summary)
    if location:
        event["location"] = vText(location)
    event.add("status", status)
    return event


def build_calendar(
    *,
    method: str,
    uid: str,
    sequence: int,
    start: str,
    end: str | None,
    summary: str,
    location: str | None,
    organizer: str,
    attendee: str,
    stamp: datetime,
) -> bytes:
    calendar = new_calendar(method=method)
    event = event_of(
        uid=uid,
        sequence=sequence,
        start=parse_instant(start),
        end=parse_instant(end) if end else None,
        summary=summary,
        location=location,
        stamp=stamp,
        status="CANCELLED" if method == "CANCEL" else "CONFIRMED",
    )
    event["organizer"] = vCalAddress(f"mailto:{organizer}")
    event.add("attendee", vCalAddress(f"mailto:{attendee}"), parameters={"ROLE": "REQ-PARTICIPANT"})
    calendar.add_component(event)
    return bytes(calendar.to_ical())
