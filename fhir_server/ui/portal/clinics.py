"""The clinic behind a service, kept per session, and the appointment pages built on it.

The booking steps and the appointment pages show the same service, place and
clinicians again and again. One search fetches them (`booking_pages.clinic`);
what it answered is kept per session and service for 30 seconds (`recent.py`
says why that is safe). An appointment's page then asks the API for the
Appointment alone, one query, instead of a search that also includes its
service, place, clinician's role and Schedules (five).
"""

from __future__ import annotations

from fhir_server.recent import Recent
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.portal.booking_model import actor_ids
from fhir_server.ui.web import SignedInPage

_clinics: Recent[tuple[str, str], pages.Clinic] = Recent(seconds=30, size=4096)


async def clinic(page: SignedInPage, service_id: str) -> pages.Clinic | None:
    """The service's clinic as this session's token reads it; None for an unknown service."""
    if not service_id:
        return None
    key = (page.session.id, service_id)
    place = _clinics.get(key)
    if place is None:
        try:
            place = await pages.clinic(page.api, service_id)
        except pages.NotFound:
            return None
        _clinics.put(key, place)
    return place


async def appointment(page: SignedInPage, appointment_id: str) -> pages.AppointmentView:
    """One of the patient's appointments with its service, place and Schedule; NotFound for
    any other id. The session's clinic describes it when it can; an appointment whose
    Schedule is no longer among the service's active ones is looked up whole."""
    found = await pages.own_appointment(page.api, appointment_id)
    service = next(iter(actor_ids(found, "HealthcareService")), "")
    place = await clinic(page, service)
    view = pages.view_in(found, place) if place is not None else None
    return view if view is not None else await pages.appointment(page.api, appointment_id)
