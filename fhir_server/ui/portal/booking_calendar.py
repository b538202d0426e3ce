"""The "Add to calendar" file of one appointment (RFC 5545, a PUBLISH of one event).

Times are written in the clinic's zone with its VTIMEZONE, so a calendar in
another zone still shows when the clinic expects the patient, and the file
names the zone as every other place the portal shows a time does. The UID is
the one the notification e-mails use (`<Appointment id>@clinic-booking`), so
importing both updates one event instead of adding two.
"""

from __future__ import annotations

from datetime import date, datetime

from icalendar import Calendar, Event, vText

from fhir_server.ui.portal.booking_pages import AppointmentView


def calendar_file(view: AppointmentView, summary: str, stamp: datetime) -> bytes:
    """The .ics of one Appointment; `summary` is the event's title in the patient's language."""
    calendar = Calendar()
    calendar.add("prodid", "-//fhir-server//clinic portal//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{view.id}@clinic-booking")
    event.add("dtstamp", stamp)
    event.add("dtstart", view.start.moment)
    event.add("dtend", view.end.moment)
    event.add("summary", summary)
    where = ", ".join([view.where, *view.address] if view.where else view.address)
    if where:
        event["location"] = vText(where)
    if view.clinician:
        event.add("description", view.clinician)
    event.add("status", "CANCELLED" if view.status == "cancelled" else "CONFIRMED")
    calendar.add_component(event)
    # The zone's rules for the appointment's year and the next (not 1970-2038): a short file.
    year = view.start.moment.year
    calendar.add_missing_timezones(date(year, 1, 1), date(year + 2, 1, 1))
    return bytes(calendar.to_ical())
