"""The iCalendar attachment (RFC 5546 iTIP) that lets calendar apps track one event.

Booking sends METHOD:REQUEST; a reschedule sends REQUEST again with the same
UID and a higher SEQUENCE, so the calendar moves the event instead of adding
one; a cancellation or decline sends METHOD:CANCEL for that UID.

A calendar feed (`publishing.calendar`) builds its VCALENDAR with the
`icalendar` library's component objects (`new_calendar`, `event_of`). An
invitation always has the same few properties and goes out with every
message, so it is written line by line instead (RFC 5545 TEXT escaping,
folding at 75 octets): the component objects cost a third of a message's
delivery. `tests/unit/test_ical_wire.py` checks that its bytes are those
`new_calendar` and `event_of` write for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar, Event, vText

from fhir_server.store.clock import parse_instant

# A content line holds at most 75 octets; a folded line starts with one space.
_FOLD_AT = 75


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


def _text(value: str) -> str:
    """RFC 5545 TEXT escaping, in the order `icalendar` applies it (`\\N` is kept as a
    line break; CR LF, LF and a lone CR all become `\\n`)."""
    return (
        value.replace("\\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _fold(line: str) -> str:
    """Lines of at most 75 octets, never splitting a character or a backslash escape."""
    if len(line.encode()) < _FOLD_AT:
        return line
    lines: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode())
        if current and size + width >= _FOLD_AT:
            carried = current.pop() if len(current) > 1 and current[-1] in "\\^" else ""
            lines.append("".join(current))
            current = [carried] if carried else []
            size = len(carried.encode())
        current.append(char)
        size += width
    lines.append("".join(current))
    return "\r\n ".join(lines)


def _moment(value: datetime) -> str:
    """UTC with `Z` (an instant with another offset is written in UTC, which every
    calendar reads, not as a `TZID` no VTIMEZONE defines); a time without zone as is."""
    if value.tzinfo is None:
        return f"{value:%Y%m%dT%H%M%S}"
    return f"{value.astimezone(UTC):%Y%m%dT%H%M%S}Z"


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
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//fhir-server//clinic booking//EN",
        f"METHOD:{_text(method)}",
        "BEGIN:VEVENT",
        f"SUMMARY:{_text(summary)}",
        f"DTSTART:{_moment(parse_instant(start))}",
    ]
    if end:
        lines.append(f"DTEND:{_moment(parse_instant(end))}")
    lines += [
        f"DTSTAMP:{_moment(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))}",  # UTC by rule
        f"UID:{_text(uid)}",
        f"SEQUENCE:{sequence}",
        f"ATTENDEE;ROLE=REQ-PARTICIPANT:mailto:{attendee}",
    ]
    if location:
        lines.append(f"LOCATION:{_text(location)}")
    lines += [
        f"ORGANIZER:mailto:{organizer}",
        f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(_fold(line) for line in lines).encode()
