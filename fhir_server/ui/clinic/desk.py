"""The front desk's patient pages: find a patient, register one without a duplicate, and
the patient's page (their appointments, and booking for them).

Only the front desk and admins open these (`Desk`); a practitioner or a
patient gets the 403 page. Bad input is an error summary (400) and writes
nothing. Registering runs `Patient/$match` first and shows what it finds,
certain and probable matches first; a new record is created only when no
match is certain (a certain one is the patient: the desk picks it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.ui.clinic import desk_patients as patients
from fhir_server.ui.clinic.roles import ADMIN, FRONTDESK
from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal import booking_pages as pages
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage, requiring

router = APIRouter()

DESK = frozenset({FRONTDESK, ADMIN})
Desk = Annotated[SignedInPage, requiring(*DESK)]


def _errors(page: SignedInPage, problems: list[tuple[str, str]]) -> list[FieldError]:
    return [FieldError(page._(message), field) for field, message in problems]


@router.get("/desk")
async def find(page: Desk, request: Request) -> Response:
    """Find a patient: the form, and the Patients found when it was sent."""
    search = patients.Search.of(request.query_params)
    sent = any(k in request.query_params for k in ("name", "birthdate", "phone", "identifier"))
    errors = _errors(page, search.problems()) if sent else []
    found = await patients.find(page.api, search) if sent and not errors else None
    return page.render(
        "clinic/desk_find.html",
        title=page._("Find a patient"),
        status=400 if errors else 200,
        errors=errors,
        search=search,
        found=found,
    )


def _register_page(
    page: SignedInPage,
    new: patients.NewPatient,
    errors: list[FieldError] | None = None,
    found: list[patients.PatientRow] | None = None,
    status: int = 200,
) -> Response:
    certain = any(row.grade == "certain" for row in found or [])
    return page.render(
        "clinic/desk_register.html",
        title=page._("Is this patient already registered?")
        if found
        else page._("Register a new patient"),
        status=status,
        errors=errors,
        new=new,
        found=found or [],
        certain=certain,
        genders=patients.GENDERS,
    )


@router.get("/desk/register")
async def register_page(page: Desk, request: Request) -> Response:
    """The register form, filled with what was typed to find the patient."""
    search = patients.Search.of(request.query_params)
    words = search.name.split()
    given, family = (words[0], " ".join(words[1:])) if len(words) > 1 else ("", search.name)
    new = patients.NewPatient(
        given=given, family=family, birthdate=search.birthdate, phone=search.phone
    )
    return _register_page(page, new)


@router.post("/desk/register")
async def register(page: Desk, form: CheckedForm) -> Response:
    """Match first; create only when nothing matches, or when the desk has seen the matches
    and none is certain (checked again now: someone may have registered them meanwhile)."""
    new = patients.NewPatient.of(form)
    errors = _errors(page, new.problems(pages.utc_now().date()))
    if errors:
        return _register_page(page, new, errors, status=400)
    found = await patients.matches(page.api, new)
    seen = form.get("step") == "create"
    if found and (not seen or any(row.grade == "certain" for row in found)):
        problem = []
        if seen:  # a certain match appeared after the desk chose to create
            message = page._("This patient is already registered. Choose them below.")
            problem = [FieldError(message, "matches")]
        return _register_page(page, new, problem, found, status=409 if seen else 200)
    try:
        patient_id = await patients.register(page.api, new)
    except PortalApiError as error:
        if error.status not in (400, 422):
            raise
        message = page._("The patient could not be registered. Check the answers and try again.")
        return _register_page(page, new, [FieldError(message, "given")], status=400)
    return page.redirect(page.url(f"/desk/patients/{patient_id}", done="registered"))


@router.get("/desk/patients/{patient_id}")
async def patient_page(page: Desk, patient_id: str, request: Request) -> Response:
    """A patient's details and appointments, with booking, rescheduling and cancelling."""
    if not patients.is_fhir_id(patient_id):
        return _not_found(page)
    try:
        patient = await patients.patient(page.api, patient_id)
    except PortalApiError as error:
        if error.status not in (404, 410):
            raise
        return _not_found(page)
    page.api.patient = patient_id
    upcoming, past = await pages.my_appointments(page.api, pages.utc_now())
    row = patients.row_of(patient)
    return page.render(
        "clinic/desk_patient.html",
        title=row.name or page._("Patient record"),
        row=row,
        done=request.query_params.get("done"),
        upcoming=upcoming,
        past=past,
    )


def not_found(page: SignedInPage, title: str, message: str) -> Response:
    """The 404 page of the desk: `title` and `message` are translated already."""
    return page.render("error.html", title=title, status=404, message=message)


def _not_found(page: SignedInPage) -> Response:
    message = page._("Find the patient by name, date of birth or phone number.")
    return not_found(page, page._("Patient not found"), message)
