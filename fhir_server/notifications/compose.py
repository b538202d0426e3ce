"""Building the rendered message for a stored Communication (worker side).

Reads what the message is about at send time: the appointment version named
in `about`, the recipient's name, the Location's time zone (the standard
`timezone` extension) and name, the practitioner's name.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fhir_server.fhir.errors import FhirError
from fhir_server.notifications.channels.base import Rendered
from fhir_server.notifications.display import display_name
from fhir_server.notifications.ical import build_calendar, sequence_of, uid_of
from fhir_server.notifications.message import code_of, details_of, reference_to
from fhir_server.notifications.render import View, local_time, render, zone
from fhir_server.settings import Settings
from fhir_server.store.resources import ResourceStore

TIMEZONE_EXT = "http://hl7.org/fhir/StructureDefinition/timezone"
DIRECTORY_TTL = 30.0
_CALENDAR_METHODS = {
    "booked": "REQUEST",
    "pending": "REQUEST",
    "confirmed": "REQUEST",
    "rescheduled": "REQUEST",
    "cancelled": "CANCEL",
    "declined": "CANCEL",
}


async def load_versioned(store: ResourceStore, reference: str | None) -> dict[str, Any] | None:
    """`Type/id/_history/v` (or `Type/id`) -> the resource, None when unknown."""
    if not reference:
        return None
    parts = reference.split("/")
    try:
        if len(parts) == 4:
            return (await store.vread(parts[0], parts[1], int(parts[3]))).resource
        return (await store.read(parts[0], parts[1])).resource
    except (FhirError, ValueError):
        return None


def _participant(appointment: dict[str, Any], *types: str) -> dict[str, Any] | None:
    for participant in appointment.get("participant", []):
        actor = participant.get("actor", {})
        if str(actor.get("reference", "")).split("/")[0] in types:
            return dict(actor)
    return None


class _Directory:
    """Locations and practitioners as messages show them, kept for `DIRECTORY_TTL` seconds.

    Every message of a clinic names the same few; re-reading them for each
    message costs more store round trips than the message itself. A renamed
    Location shows its new name after at most the TTL.
    """

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def get(self, store: ResourceStore, reference: str | None) -> dict[str, Any] | None:
        if not reference:
            return None
        now = time.monotonic()
        cached = self.entries.get(reference)
        if cached and now - cached[0] < DIRECTORY_TTL:
            return cached[1]
        found = await load_versioned(store, reference)
        if len(self.entries) > 1000:
            self.entries.clear()
        self.entries[reference] = (now, found)
        return found


directory = _Directory()


def link_base(settings: Settings) -> str:
    """Where a message's link leads: the patient portal, whose `/appointments/{id}` page
    shows the appointment with its Change and Cancel links, unless set otherwise."""
    if settings.notify_link_base:
        return settings.notify_link_base.rstrip("/")
    return f"{settings.base_url.removesuffix('/fhir')}/portal"


async def compose(
    store: ResourceStore, settings: Settings, communication: dict[str, Any]
) -> Rendered | None:
    """None when the appointment version it is about cannot be read."""
    details = details_of(communication)
    appointment = await load_versioned(store, reference_to(communication, "Appointment"))
    if appointment is None:
        return None
    previous = await load_versioned(store, details.get("replaces"))
    location_actor = _participant(appointment, "Location")
    location = await directory.get(store, (location_actor or {}).get("reference"))
    tz_code = next(
        (
            e.get("valueCode")
            for e in (location or {}).get("extension", [])
            if e.get("url") == TIMEZONE_EXT
        ),
        None,
    )
    tz = zone(tz_code, settings.notify_timezone)
    language = str(details.get("language") or settings.notify_language)
    practitioner_actor = _participant(appointment, "Practitioner", "PractitionerRole")
    practitioner = (practitioner_actor or {}).get("display") or display_name(
        await directory.get(store, (practitioner_actor or {}).get("reference"))
    )
    event = str(details.get("event", ""))
    offset = int(details.get("offset") or 0)
    view = View(
        event=event,
        role=str(details.get("role", "patient")),
        language=language,
        recipient_name=str(details.get("recipientName", "")),
        when=local_time(appointment.get("start"), tz, language),
        previous_when=local_time(details.get("previousStart"), tz, language),
        practitioner=str(practitioner or ""),
        location=(location_actor or {}).get("display") or display_name(location),
        description=str(appointment.get("description", "")),
        cancelled_by=str(details.get("cancelledBy", "")),
        hours_before=offset // 60,
        link=f"{link_base(settings)}/appointments/{appointment['id']}",
    )
    parts = render(view)
    destination = str(details.get("destination", ""))
    calendar, method = None, _CALENDAR_METHODS.get(event)
    if method and code_of(communication, "medium") == "email" and appointment.get("start"):
        calendar = build_calendar(
            method=method,
            uid=uid_of(appointment, previous),
            sequence=sequence_of(appointment, previous),
            start=appointment["start"],
            end=appointment.get("end"),
            summary=parts["subject"],
            location=view.location or None,
            organizer=settings.smtp_from,
            attendee=destination,
            stamp=datetime.now(UTC),
        )
    return Rendered(
        message_id=str(communication["id"]),
        destination=destination,
        subject=parts["subject"],
        text=parts["text"],
        html=parts["html"],
        short=parts["short"],
        link=view.link,
        calendar=calendar,
        calendar_method=method if calendar else None,
    )
