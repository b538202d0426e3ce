"""One appointment at the front desk: what the booking pages end on, and cancelling it.

`/clinic/appointments/<id>` is where the shared booking pages send the desk
after a booking or a reschedule (as the portal's confirmation page); it names
the patient and links to rescheduling (the booking pages' day step, for the
same service and clinician) and cancelling. Staff are not bound by the
patients' cancellation cut-off, but they always give a reason, written to the
Appointment's `cancelationReason`; the server notifies the patient.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.ui.clinic import desk_patients as patients
from fhir_server.ui.clinic.desk import Desk, not_found
from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.portal import clinics
from fhir_server.ui.portal.appointments import REASON_LIMIT, done_title
from fhir_server.ui.portal.booking_model import CHANGEABLE, actor_ids
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()


async def _view(page: SignedInPage, appointment_id: str) -> pages.AppointmentView | None:
    """The Appointment with its service, place and Schedule, acting for its patient."""
    if not patients.is_fhir_id(appointment_id):
        return None
    try:
        appointment = await page.api.read("Appointment", appointment_id)
        page.api.patient = next(iter(actor_ids(appointment, "Patient")), None)
        return await clinics.appointment(page, appointment_id)
    except (pages.NotFound, PortalApiError):
        return None


def _not_found(page: SignedInPage) -> Response:
    message = page._("Find it on the patient's page. Nothing was changed.")
    return not_found(page, page._("Appointment not found"), message)


@router.get("/appointments/{appointment_id}")
async def appointment(page: Desk, appointment_id: str, request: Request) -> Response:
    view = await _view(page, appointment_id)
    if view is None:
        return _not_found(page)
    done = request.query_params.get("done")
    return page.render(
        "clinic/desk_appointment.html",
        title=done_title(page, done, page._("Appointment")),
        view=view,
        done=done,
        patient=page.api.patient,
        changeable=view.status in CHANGEABLE,
        clinician=next(iter(actor_ids(view.appointment, "PractitionerRole")), ""),
    )


def _cancel_page(
    page: SignedInPage,
    view: pages.AppointmentView,
    reason: str,
    errors: list[FieldError] | None = None,
    status: int = 200,
) -> Response:
    """The portal's cancel page, asking the desk for the reason the patient will be told."""
    hint = page._(
        "The patient is told it. Do not include medical details (%(limit)s characters at most)."
    )
    return page.render(
        "portal/appointments_cancel.html",
        title=page._("Cancel this appointment"),
        status=status,
        errors=errors,
        view=view,
        reason=reason,
        limit=REASON_LIMIT,
        reason_label=page._("Reason for cancelling"),
        reason_hint=hint % {"limit": REASON_LIMIT},
    )


@router.get("/appointments/{appointment_id}/cancel")
async def cancel_page(page: Desk, appointment_id: str) -> Response:
    view = await _view(page, appointment_id)
    if view is None or view.status not in CHANGEABLE:
        return _not_found(page)
    return _cancel_page(page, view, "")


@router.post("/appointments/{appointment_id}/cancel")
async def cancel(page: Desk, appointment_id: str, form: CheckedForm) -> Response:
    view = await _view(page, appointment_id)
    if view is None or view.status not in CHANGEABLE:
        return _not_found(page)
    reason = str(form.get("reason") or "").strip()
    if not reason or len(reason) > REASON_LIMIT:
        too_long = page._("The reason must be %(limit)s characters or fewer")
        message = too_long % {"limit": REASON_LIMIT} if reason else page._("Give the reason")
        return _cancel_page(page, view, reason, [FieldError(message, "reason")], status=400)
    try:
        await pages.cancel(page.api, view, reason)
    except PortalApiError as error:
        if error.status not in (409, 412):
            raise
        message = page._("This appointment changed while you were on this page. Try again.")
        fresh = await _view(page, appointment_id) or view
        return _cancel_page(page, fresh, reason, [FieldError(message, "reason")], status=409)
    return page.redirect(page.url(f"/appointments/{view.id}", done="cancelled"))
