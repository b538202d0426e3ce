"""My appointments: the list, one appointment (the bookmarkable confirmation page), its
calendar file, and the ways to change it (reschedule, cancel).

The clinic's cancellation cut-off (Schedule extension) is checked before a
change is offered, so the patient reads why and how to reach the clinic
instead of filling in a form the server would refuse; the server still
enforces it, and its refusal is shown the same way.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.portal import clinics
from fhir_server.ui.portal.booking_calendar import calendar_file
from fhir_server.ui.portal.booking_model import CHANGEABLE, too_late_to_change
from fhir_server.ui.web import CheckedForm, FieldError, SignedIn, SignedInPage

router = APIRouter()

REASON_LIMIT = 500


@router.get("/appointments")
async def my_appointments(page: SignedIn) -> Response:
    upcoming, past = await pages.my_appointments(page.api, pages.utc_now())
    return page.render(
        "portal/appointments.html",
        title=page._("My appointments"),
        upcoming=upcoming,
        past=past,
    )


async def _mine(page: SignedInPage, appointment_id: str) -> pages.AppointmentView | None:
    try:
        return await clinics.appointment(page, appointment_id)
    except (pages.NotFound, PortalApiError):
        return None


def _not_found(page: SignedInPage) -> Response:
    return page.render(
        "error.html",
        title=page._("Appointment not found"),
        status=404,
        message=page._("Check the link, or find it in your appointments. Nothing was changed."),
    )


def done_title(page: SignedInPage, done: str | None, otherwise: str) -> str:
    """An appointment page's title just after a change (`?done=`), else `otherwise`."""
    titles = {
        "booked": page._("Appointment booked"),
        "rescheduled": page._("Appointment changed"),
        "cancelled": page._("Appointment cancelled"),
    }
    return titles.get(done or "", otherwise)


def _too_late(view: pages.AppointmentView) -> bool:
    return too_late_to_change(view.appointment, view.schedule, pages.utc_now())


@router.get("/appointments/{appointment_id}")
async def appointment(page: SignedIn, appointment_id: str, request: Request) -> Response:
    view = await _mine(page, appointment_id)
    if view is None:
        return _not_found(page)
    done = request.query_params.get("done")
    return page.render(
        "portal/appointments_one.html",
        title=done_title(page, done, page._("Your appointment")),
        view=view,
        done=done,
        changeable=view.status in CHANGEABLE and not _too_late(view),
        too_late=view.status in CHANGEABLE and _too_late(view),
        contact_points=view.contact,
    )


@router.get("/appointments/{appointment_id}/calendar.ics")
async def calendar(page: SignedIn, appointment_id: str) -> Response:
    view = await _mine(page, appointment_id)
    if view is None:
        return _not_found(page)
    summary = view.what or page._("Clinic appointment")
    body = calendar_file(view, summary, pages.utc_now())
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="appointment-{view.id}.ics"',
            "Cache-Control": "no-store",
        },
    )


def _refused(page: SignedInPage, view: pages.AppointmentView, status: int = 200) -> Response:
    """The clinic's cut-off has passed: say so, and how to reach the clinic."""
    return page.render(
        "portal/appointments_too_late.html",
        title=page._("You can no longer change this appointment online"),
        status=status,
        view=view,
        contact_points=view.contact,
    )


async def _changeable(
    page: SignedInPage, appointment_id: str, refused: int = 200
) -> pages.AppointmentView | Response:
    """The patient's appointment if it may still be changed online, else the page saying why
    (`refused`: its status when the cut-off has passed; 409 for a form that tried)."""
    view = await _mine(page, appointment_id)
    if view is None or view.status not in CHANGEABLE:
        return _not_found(page)
    return _refused(page, view, refused) if _too_late(view) else view


@router.get("/appointments/{appointment_id}/reschedule")
async def reschedule(page: SignedIn, appointment_id: str) -> Response:
    """Choose a new time for the same service and clinician (the day page onwards)."""
    view = await _changeable(page, appointment_id)
    if isinstance(view, Response):
        return view
    query = {
        "service": view.service_id or "",
        "clinician": view.schedule_id or pages.ANYONE,
        "reschedule": view.id,
    }
    return page.redirect(page.url("/book/day", **query))


def _cancel_page(
    page: SignedInPage, view: pages.AppointmentView, reason: str, errors: list[FieldError]
) -> Response:
    return page.render(
        "portal/appointments_cancel.html",
        title=page._("Cancel your appointment"),
        status=400 if errors else 200,
        errors=errors,
        view=view,
        reason=reason,
        limit=REASON_LIMIT,
    )


@router.get("/appointments/{appointment_id}/cancel")
async def cancel_page(page: SignedIn, appointment_id: str) -> Response:
    view = await _changeable(page, appointment_id)
    return view if isinstance(view, Response) else _cancel_page(page, view, "", [])


@router.post("/appointments/{appointment_id}/cancel")
async def cancel(page: SignedIn, appointment_id: str, form: CheckedForm) -> Response:
    view = await _changeable(page, appointment_id, refused=409)
    if isinstance(view, Response):
        return view
    reason = str(form.get("reason") or "")
    if len(reason) > REASON_LIMIT:
        message = page._("The reason must be %(limit)s characters or fewer") % {
            "limit": REASON_LIMIT
        }
        return _cancel_page(page, view, reason, [FieldError(message, "reason")])
    try:
        await pages.cancel(page.api, view, reason)
    except PortalApiError as error:
        if error.status == 422:  # the server's cut-off (its clock or settings moved on)
            return _refused(page, view, 409)
        if error.status in (409, 412):
            message = page._("This appointment changed while you were on this page. Try again.")
            return _cancel_page(
                page,
                await _mine(page, appointment_id) or view,
                reason,
                [FieldError(message, "reason")],
            )
        raise
    return page.redirect(page.url(f"/appointments/{view.id}", done="cancelled"))
