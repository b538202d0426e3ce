"""Requests waiting for confirmation: appointments booked on a Schedule with
`booking-provider-must-confirm`, still `pending` for a provider's answer.

Accept or decline is one action each: a version-checked PUT of the Appointment with the
providers' participant status set (all `accepted`, or one `declined` with the reason as
its `cancelationReason`). The booking engine then books or cancels it and the usual
notifications tell the patient (Confirmed or Declined). A practitioner sees only the
requests made to them (the API's gate); the front desk and admins see every clinician's.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.clinic import schedule_data as data
from fhir_server.ui.clinic import schedule_model as model
from fhir_server.ui.clinic.roles import Staff
from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal.booking_pages import update, utc_now
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()

REASON_LIMIT = 500
ANSWERS = ("accepted", "declined")


async def _requests_page(
    page: SignedInPage,
    errors: list[FieldError] | None = None,
    status: int = 200,
    answered: str = "",
) -> Response:
    scope = await data.scope_of(page, "")
    found = await data.everything(
        page.api,
        "Appointment",
        [("status", "pending"), ("_include", "Appointment:actor")],
    )
    waiting = {str(r.get("id")) for r in found if model.waiting(r)}
    visits = [v for v in model.visits(found, scope.names, scope.zone, utc_now()) if v.id in waiting]
    return page.render(
        "clinic/requests.html",
        title=page._("Requests waiting for confirmation"),
        status=status,
        errors=errors,
        requests=visits,
        answered=answered if answered in ANSWERS else "",
        reason_limit=REASON_LIMIT,
    )


@router.get("/requests")
async def requests(page: Staff, answered: str = "") -> Response:
    return await _requests_page(page, answered=answered)


@router.post("/requests/{appointment_id}/accept")
async def accept(page: Staff, appointment_id: str, form: CheckedForm) -> Response:
    return await _answer(page, appointment_id, accept=True, reason="")


@router.post("/requests/{appointment_id}/decline")
async def decline(page: Staff, appointment_id: str, form: CheckedForm) -> Response:
    value = form.get("reason")
    reason = value.strip() if isinstance(value, str) else ""
    field = f"reason-{appointment_id}"
    if not reason:
        error = FieldError(page._("Enter the reason for declining, for the patient."), field)
        return await _requests_page(page, [error], 400)
    if len(reason) > REASON_LIMIT:
        message = page._("The reason must be %(limit)d characters or fewer.") % {
            "limit": REASON_LIMIT
        }
        return await _requests_page(page, [FieldError(message, field)], 400)
    return await _answer(page, appointment_id, accept=False, reason=reason)


async def _answer(
    page: SignedInPage, appointment_id: str, *, accept: bool, reason: str
) -> Response:
    appointment = await page.api.read("Appointment", appointment_id)
    gone = page._("This request was already answered or withdrawn. Nothing was changed.")
    if appointment.get("status") != "pending" or not model.waiting(appointment):
        return await _requests_page(page, [FieldError(gone)], 409)
    try:
        await update(page.api, model.answered(appointment, accept, reason))
    except PortalApiError as refused:
        if refused.status not in (409, 412, 422):
            raise
        return await _requests_page(page, [FieldError(gone)], 409)
    return page.redirect(page.url("/requests", answered=ANSWERS[0 if accept else 1]))
