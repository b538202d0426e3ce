"""The schedule: a day (a practitioner's landing page) and a week, as tables, and each
visit's check-in and outcome (Arrived, then Completed or No-show).

Outcomes are written through the API (a version-checked PUT of the Appointment), whose
booking engine and visits module record the Encounter and charges of each step; a refusal
(No-show before the start, a change made meanwhile) comes back as a message on the same
day's page, with nothing changed.
"""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.fhir.instants import parse_instant
from fhir_server.ui.clinic import schedule_data as data
from fhir_server.ui.clinic import schedule_model as model
from fhir_server.ui.clinic.roles import Staff
from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal.booking_model import CalendarDay, day_bounds, parse_day, week_of
from fhir_server.ui.portal.booking_pages import update, utc_now
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()


def _field(form: CheckedForm, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def _scope(page: SignedInPage, choice: str) -> data.Scope | Response:
    """Whose schedule to show, or the page that says why it cannot be shown."""
    try:
        return await data.scope_of(page, choice)
    except data.OnlyOwnSchedule:
        return page.render(
            "error.html",
            title=page._("You can see only your own schedule"),
            status=403,
            message=page._(
                "Your account shows your own appointments only. Ask the clinic's "
                "administrator if you need to see a colleague's schedule."
            ),
        )
    except data.UnknownClinician:
        return page.render(
            "error.html",
            title=page._("Clinician not found"),
            status=404,
            message=page._("Choose a clinician from the schedule's list."),
        )


async def _day_page(
    page: SignedInPage,
    day_text: str | None,
    choice: str,
    errors: list[FieldError] | None = None,
    status: int = 200,
) -> Response:
    scope = await _scope(page, choice)
    if isinstance(scope, Response):
        return scope
    now = utc_now()
    day = parse_day(day_text) or now.astimezone(scope.zone).date()
    start, end = day_bounds(day, scope.zone)
    visits = await data.appointments(page.api, scope, start, end, now)
    rows = model.table(visits, [c.ref for c in scope.shown], model.clinician_of)
    return page.render(
        "clinic/schedule_day.html",
        title=page._("Schedule"),
        status=status,
        errors=errors,
        scope=scope,
        day=CalendarDay(day),
        rows=rows,
        flagged=sum(v.flagged for v in visits),
        count=len(visits),
        links=_links(page, scope, day, timedelta(days=1), "/schedule"),
        outcomes=model.OUTCOMES,
    )


def _links(
    page: SignedInPage, scope: data.Scope, day: date, step: timedelta, path: str
) -> dict[str, str]:
    """The previous, next and other view's addresses, keeping the clinician chosen."""
    chosen = _chosen(scope)
    other = "/schedule/week" if path == "/schedule" else "/schedule"
    return {
        "previous": page.url(path, day=(day - step).isoformat(), **chosen),
        "next": page.url(path, day=(day + step).isoformat(), **chosen),
        "other": page.url(other, day=day.isoformat(), **chosen),
    }


@router.get("/schedule")
async def schedule_day(page: Staff, day: str | None = None, clinician: str = "") -> Response:
    return await _day_page(page, day, clinician)


@router.get("/schedule/week")
async def schedule_week(page: Staff, day: str | None = None, clinician: str = "") -> Response:
    scope = await _scope(page, clinician)
    if isinstance(scope, Response):
        return scope
    now = utc_now()
    days = week_of(parse_day(day) or now.astimezone(scope.zone).date())
    start, end = day_bounds(days[0], scope.zone)[0], day_bounds(days[-1], scope.zone)[1]
    visits = await data.appointments(page.api, scope, start, end, now)
    return page.render(
        "clinic/schedule_week.html",
        title=page._("Week schedule"),
        scope=scope,
        days=[CalendarDay(d) for d in days],
        day_links=[page.url("/schedule", day=d.isoformat(), **_chosen(scope)) for d in days],
        rows=model.table(visits, list(days), model.day_of),
        flagged=sum(v.flagged for v in visits),
        count=len(visits),
        links=_links(page, scope, days[0], timedelta(days=7), "/schedule/week"),
    )


def _chosen(scope: data.Scope) -> dict[str, str]:
    return {"clinician": scope.choice} if scope.choice else {}


@router.post("/schedule/visits/{appointment_id}")
async def record_outcome(page: Staff, appointment_id: str, form: CheckedForm) -> Response:
    """Arrived, Completed or No-show for one visit; back to its day, at its row."""
    status, day, choice = _field(form, "status"), _field(form, "day"), _field(form, "clinician")
    if status not in model.OUTCOMES:
        return await _day_page(
            page, day, choice, [FieldError(page._("Choose what happened."))], 400
        )
    appointment = await page.api.read("Appointment", appointment_id)
    start = appointment.get("start")
    if status == "noshow" and (not start or parse_instant(str(start)) > utc_now()):
        message = page._("A no-show can be recorded only after the appointment's start time.")
        return await _day_page(page, day, choice, [FieldError(message)], 409)
    changed = page._(
        "This appointment could not be changed: its status changed meanwhile. "
        "Check its status below and try again."
    )
    seen = _field(form, "version")  # the version the row showed: act on what was seen
    if seen and seen != str(appointment.get("meta", {}).get("versionId")):
        return await _day_page(page, day, choice, [FieldError(changed)], 409)
    try:
        await update(page.api, {**appointment, "status": status})
    except PortalApiError as refused:
        if refused.status not in (409, 412, 422):
            raise
        return await _day_page(page, day, choice, [FieldError(changed)], 409)
    back = {"day": day, "clinician": choice}
    target = page.url("/schedule", **{k: v for k, v in back.items() if v})
    return page.redirect(f"{target}#visit-{appointment_id}")
