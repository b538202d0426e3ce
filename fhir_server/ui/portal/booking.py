"""Find a time and book it: service -> clinician -> day -> time -> check your answers.

One question per page (GOV.UK), each a POST that redirects to the next page
with what was chosen so far in the address (`Flow`), so Back, Change links
and bookmarks all work without hidden server state. Choosing a time holds it
(`$hold`) while the patient checks their answers; "Book" turns the hold into a
booking (`$book`). A reschedule goes through the same pages with
`reschedule=<Appointment id>` and is booked in one step (`$book` with
`cancelled-appt-id`), so the old time is kept until the new one is certain.

The clinic's front desk books through these same pages for a patient it chose
(`patient=<Patient id>` in the flow; `ui/clinic/desk_booking.py` serves them
in the clinic workspace); it must then give a reason, written to the
Appointment's `comment` like the patient's own note.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.portal import clinics
from fhir_server.ui.portal.booking_model import (
    CalendarDay,
    LocalTime,
    hold_expiry,
    local,
    name_of,
    parse_day,
)
from fhir_server.ui.web import CheckedForm, FieldError, SignedIn, SignedInPage

router = APIRouter()

COMMENT_LIMIT = 500


@dataclass(frozen=True)
class Flow:
    """What the patient has chosen so far, carried from page to page in the address."""

    service: str = ""
    clinician: str = ""
    day: str = ""
    hold: str = ""
    slot: str = ""
    reschedule: str = ""
    source: str = ""
    comment: str = ""
    patient: str = ""  # set when the front desk books for a patient (empty in the portal)

    @classmethod
    def of(cls, values: Any) -> Flow:
        """From query parameters or a form (unknown keys ignored, values as text)."""
        return cls(
            **{k: str(values.get(k) or "")[:COMMENT_LIMIT] for k in cls.__dataclass_fields__}
        )

    def query(self, **changes: str) -> dict[str, str]:
        return {k: v for k, v in asdict(replace(self, **changes)).items() if v}


def _not_found(page: SignedInPage) -> Response:
    return page.render(
        "error.html",
        title=page._("This appointment or time was not found"),
        status=404,
        message=page._(
            "It may have been taken, cancelled or never existed. Nothing has been changed."
        ),
    )


async def _chosen_clinic(page: SignedInPage, flow: Flow) -> pages.Clinic | None:
    """The service with the chosen clinician (or anyone); None for ids that do not fit."""
    place = await clinics.clinic(page, flow.service)
    return place if place is not None and place.schedule_ids(flow.clinician) else None


@router.get("/book")
async def start(page: SignedIn, request: Request) -> Response:
    """The start of booking, or a deep link (`?slot=<Slot id>&source=<referral>`) that goes
    straight to check your answers for that time."""
    flow = Flow.of(request.query_params)
    slot = request.query_params.get("slot")
    if not slot:
        return page.redirect(page.url("/book/service", **flow.query()))
    try:
        held = await pages.hold(page.api, slot, flow.source)
    except (pages.NotFound, PortalApiError):
        return page.render(
            "portal/book_unavailable.html",
            title=page._("This time is no longer available"),
            status=404,
            find=page.url("/book/service", **flow.query()),
        )
    return page.redirect(page.url("/book/check", **flow.query(hold=str(held["id"]), slot="")))


def _choice_page(
    page: SignedInPage,
    name: str,
    flow: Flow,
    choices: list[pages.Choice],
    errors: list[FieldError] | None = None,
) -> Response:
    """The service or the clinician question: radios whose legend is the heading."""
    if name == "service":
        title, back = page._("Which service do you want to book?"), page.url("/")
    else:
        title = page._("Who would you like to see?")
        back = page.url("/book/service", **flow.query(clinician=""))
    return page.render(
        "portal/book_choice.html",
        title=title,
        status=400 if errors else 200,
        errors=errors,
        flow=flow,
        name=name,
        action=page.url(f"/book/{name}"),
        back=back,
        choices=[(c.value, c.label, c.hint) for c in choices],
        chosen="" if errors else getattr(flow, name),
    )


@router.get("/book/service")
async def service_page(page: SignedIn, request: Request) -> Response:
    flow = Flow.of(request.query_params)
    return _choice_page(page, "service", flow, await pages.services(page.api))


@router.post("/book/service")
async def service_chosen(page: SignedIn, form: CheckedForm) -> Response:
    flow = Flow.of(form)
    choices = await pages.services(page.api)
    if flow.service not in {c.value for c in choices}:
        errors = [FieldError(page._("Choose a service"), "service-0")]
        return _choice_page(page, "service", flow, choices, errors)
    return page.redirect(page.url("/book/clinician", **flow.query(clinician="")))


def _clinician_choices(page: SignedInPage, place: pages.Clinic) -> list[pages.Choice]:
    anyone = pages.Choice(pages.ANYONE, page._("Anyone available"), page._("The earliest times"))
    return [anyone, *pages.clinicians(place)]


@router.get("/book/clinician")
async def clinician_page(page: SignedIn, request: Request) -> Response:
    flow = Flow.of(request.query_params)
    place = await clinics.clinic(page, flow.service)
    if place is None:
        return _not_found(page)
    return _choice_page(page, "clinician", flow, _clinician_choices(page, place))


@router.post("/book/clinician")
async def clinician_chosen(page: SignedIn, form: CheckedForm) -> Response:
    flow = Flow.of(form)
    place = await clinics.clinic(page, flow.service)
    if place is None:
        return _not_found(page)
    choices = _clinician_choices(page, place)
    if flow.clinician not in {c.value for c in choices}:
        errors = [FieldError(page._("Choose a clinician, or anyone available"), "clinician-0")]
        return _choice_page(page, "clinician", flow, choices, errors)
    return page.redirect(page.url("/book/day", **flow.query(day="")))


async def _week_page(
    page: SignedInPage,
    flow: Flow,
    place: pages.Clinic,
    errors: list[FieldError] | None = None,
    week: str = "",
) -> Response:
    now = pages.utc_now()
    today = now.astimezone(place.zone).date()
    # The week shown: `week` (the week links, a form sent back) or the day chosen before.
    week = str(page.request.query_params.get("week") or week)
    around = max(parse_day(week) or parse_day(flow.day) or today, today)
    view = await pages.week(page.api, place, flow.clinician, around, now)
    monday = view.days[0][0]
    return page.render(
        "portal/book_day.html",
        title=page._("Which day would suit you?"),
        status=400 if errors else 200,
        errors=errors,
        flow=flow,
        place=place,
        view=view,
        earlier=monday > today,
        previous_week=(monday - timedelta(days=7)).isoformat(),
        next_week=(monday + timedelta(days=7)).isoformat(),
        back=_back_from_day(page, flow),
        **_place_words(place),
    )


def _back_from_day(page: SignedInPage, flow: Flow) -> str:
    if flow.reschedule:
        return page.url(f"/appointments/{flow.reschedule}")
    return page.url("/book/clinician", **flow.query(day="", slot=""))


def _place_words(place: pages.Clinic) -> dict[str, Any]:
    return {
        "place_name": name_of(place.location) or name_of(place.service),
        "zone": str(place.zone),
        "day_of": CalendarDay,
    }


def say_day(page: SignedInPage, day: date) -> str:
    """ "Tuesday 3 March" in the page's language (headings and titles)."""
    named = CalendarDay(day)
    return f"{page._(named.weekday)} {named.day} {page._(named.month)}"


@router.get("/book/day")
async def day_page(page: SignedIn, request: Request) -> Response:
    return await _step(page, Flow.of(request.query_params), _week_page)


async def _step(
    page: SignedInPage,
    flow: Flow,
    show: Callable[[SignedInPage, Flow, pages.Clinic], Awaitable[Response]],
) -> Response:
    """Show the day or time question for the chosen service and clinician."""
    place = await _chosen_clinic(page, flow)
    return _not_found(page) if place is None else await show(page, flow, place)


@router.post("/book/day")
async def day_chosen(page: SignedIn, form: CheckedForm) -> Response:
    flow = Flow.of(form)
    place = await _chosen_clinic(page, flow)
    if place is None:
        return _not_found(page)
    if parse_day(flow.day) is None:
        errors = [FieldError(page._("Choose a day"), "day-0")]
        return await _week_page(page, flow, place, errors, str(form.get("week") or ""))
    return page.redirect(page.url("/book/time", **flow.query()))


async def _time_page(
    page: SignedInPage,
    flow: Flow,
    place: pages.Clinic,
    errors: list[FieldError] | None = None,
) -> Response:
    now = pages.utc_now()
    on = parse_day(flow.day) or now.astimezone(place.zone).date()
    view = await pages.day(page.api, place, flow.clinician, on, now)
    return page.render(
        "portal/book_time.html",
        title=page._("Choose a time on %(date)s") % {"date": say_day(page, on)},
        status=400 if errors else 200,
        errors=errors,
        flow=replace(flow, day=on.isoformat()),
        place=place,
        view=view,
        anyone=flow.clinician == pages.ANYONE,
        back=page.url("/book/day", **flow.query(slot="")),
        **_place_words(place),
    )


@router.get("/book/time")
async def time_page(page: SignedIn, request: Request) -> Response:
    return await _step(page, Flow.of(request.query_params), _time_page)


@router.post("/book/time")
async def time_chosen(page: SignedIn, form: CheckedForm) -> Response:
    """Hold the chosen time (or, when rescheduling, go and confirm the swap)."""
    flow = Flow.of(form)
    slot = flow.slot
    place = await _chosen_clinic(page, flow)
    if place is None:
        return _not_found(page)
    if not slot:
        return await _time_page(page, flow, place, [FieldError(page._("Choose a time"), "slot-0")])
    if flow.reschedule:
        return page.redirect(page.url("/book/check", **flow.query(hold="")))
    try:
        held = await pages.hold(page.api, slot)
    except (pages.NotFound, PortalApiError) as error:
        # A Slot held or booked by someone else is no longer public: the patient's token
        # sees it as missing, like a forged id. Both read the same to the patient.
        if isinstance(error, PortalApiError) and error.status not in (409, 422):
            raise
        errors = [FieldError(_taken_message(page), "slot-0")]
        return await _time_page(page, flow, place, errors)
    if flow.hold:
        await _release_previous(page, flow.hold)
    return page.redirect(page.url("/book/check", **flow.query(hold=str(held["id"]), slot="")))


def _taken_message(page: SignedInPage) -> str:
    return page._(
        "Sorry, that time has just been taken or can no longer be booked. Choose another time."
    )


async def _release_previous(page: SignedInPage, hold_id: str) -> None:
    """Give back the time held before the patient changed their answer."""
    with suppress(PortalApiError):  # already expired or not theirs: nothing to give back
        await pages.release(page.api, await page.api.read("Appointment", hold_id), "Changed time")


@dataclass
class Check:
    """What the check-your-answers page shows: the held time, or the old and new times."""

    view: pages.AppointmentView  # the hold, or the appointment being rescheduled
    new_start: LocalTime  # the old time when the new one was lost
    held_until: LocalTime | None = None
    lost: bool = False  # the hold expired, or the new time was taken meanwhile
    alternatives: list[pages.FreeTime] | None = None


async def _check(page: SignedInPage, flow: Flow) -> Check:
    if flow.reschedule:
        view = await clinics.appointment(page, flow.reschedule)
        try:
            slot = await page.api.read("Slot", flow.slot)
        except PortalApiError:  # taken (no longer public) or never was
            return Check(view, view.start, lost=True)
        return Check(view, local(str(slot["start"]), view.zone))
    view = await clinics.appointment(page, flow.hold)
    until = hold_expiry(view.appointment)
    held = local(until, view.zone) if until and view.status == "pending" else None
    return Check(view, view.start, held, lost=held is None)


async def _check_page(
    page: SignedInPage, flow: Flow, errors: list[FieldError] | None = None, status: int = 409
) -> Response:
    """Check your answers; an error with `status` 409 (the time is lost) lists alternatives."""
    check = await _check(page, flow)
    if not flow.reschedule and check.view.status == "booked":  # sent twice, or Back after booking
        return page.redirect(page.url(f"/appointments/{check.view.id}"))
    if not flow.reschedule:
        flow = replace(flow, service=flow.service or check.view.service_id or "")
    if check.lost and not errors:
        lost = page._("The time we held for you has been released. Choose another time.")
        if flow.reschedule:
            lost = _taken_message(page)
        errors = [FieldError(lost, "alternatives")]
    if errors and status == 409:
        check.alternatives = await _alternatives(page, flow, check)
    rescheduling = bool(flow.reschedule)
    return page.render(
        "portal/book_check.html",
        title=page._("Check your new appointment time")
        if rescheduling
        else page._("Check your answers before booking"),
        status=status if errors else 200,
        errors=errors,
        flow=flow,
        check=check,
        rescheduling=rescheduling,
        contact_points=check.view.contact,
    )


async def _alternatives(page: SignedInPage, flow: Flow, check: Check) -> list[pages.FreeTime]:
    """The nearest free times with the same clinician (or anyone) from the lost one on."""
    place = await clinics.clinic(page, flow.service or check.view.service_id or "")
    if place is None:
        return []
    clinician = flow.clinician if place.schedule_ids(flow.clinician) else pages.ANYONE
    around = check.new_start.moment - timedelta(hours=2)
    now = pages.utc_now()
    return await pages.next_free(page.api, place, clinician, around, now, pages.ALTERNATIVES)


@router.get("/book/check")
async def check_page(page: SignedIn, request: Request) -> Response:
    flow = Flow.of(request.query_params)
    if not flow.hold and not (flow.reschedule and flow.slot):
        return page.redirect(page.url("/book/service"))
    try:
        return await _check_page(page, flow)
    except (pages.NotFound, PortalApiError):
        return _not_found(page)


@router.post("/book/check")
async def book(page: SignedIn, form: CheckedForm) -> Response:
    """Book the held time (or swap the old appointment for the new time in one step)."""
    flow = Flow.of(form)
    if flow.patient and not flow.comment.strip():  # the front desk says why it books or moves
        missing = FieldError(page._("Give the reason for this booking or change"), "comment")
        return await _check_page(page, flow, [missing], status=400)
    try:
        if flow.reschedule:
            booked = await pages.reschedule(page.api, flow.reschedule, flow.slot, flow.comment)
        else:
            booked = await pages.book_hold(page.api, flow.hold, flow.comment)
    except (pages.NotFound, PortalApiError) as error:
        if isinstance(error, PortalApiError) and error.status not in (404, 409, 412, 422):
            raise
        lost = page._("Sorry, this time is no longer available. Choose one of the times below.")
        try:
            return await _check_page(page, flow, [FieldError(lost, "alternatives")])
        except (pages.NotFound, PortalApiError):
            return _not_found(page)
    done = "rescheduled" if flow.reschedule else "booked"
    return page.redirect(page.url(f"/appointments/{booked['id']}", done=done))


@router.post("/book/alternative")
async def alternative_chosen(page: SignedIn, form: CheckedForm) -> Response:
    """A nearest alternative chosen on the check page: hold it (or re-check the swap),
    keeping what the patient typed."""
    flow = Flow.of(form)
    chosen = str(form.get("alternative") or "")
    if not chosen:
        return page.redirect(page.url("/book/check", **flow.query()))
    if flow.reschedule:
        return page.redirect(page.url("/book/check", **flow.query(slot=chosen)))
    try:
        held = await pages.hold(page.api, chosen)
    except (pages.NotFound, PortalApiError):
        return page.redirect(page.url("/book/check", **flow.query()))
    await _release_previous(page, flow.hold)
    return page.redirect(page.url("/book/check", **flow.query(hold=str(held["id"]))))
