"""The availability editor (`/clinic/availability`): a practitioner's own weekly hours and
time off, or any clinician's for an admin.

Saving PUTs the PractitionerRole with `If-Match` (a concurrent edit is a 412, shown as
a message, never a lost update), regenerates the Slots of the Schedules it is an actor
of (`$generate-slots`) and lists the booked Appointments now outside the hours
(`$outside-availability`). The API decides again: a practitioner's token may change
only their own PractitionerRole's hours (`auth.roles`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.clinic import availability_effects as effects
from fhir_server.ui.clinic import availability_form as forms
from fhir_server.ui.clinic.roles import ADMIN, PRACTITIONER
from fhir_server.ui.fhir_api import entries
from fhir_server.ui.portal.booking_model import MONTHS, Resource, name_of, reference_id, zone_of
from fhir_server.ui.web import CheckedForm, FieldError, RoleRefused, SignedInPage, requiring

router = APIRouter()
Editor = Annotated[SignedInPage, requiring(PRACTITIONER, ADMIN)]


def _practitioner_of(role: Resource) -> str:
    return f"Practitioner/{reference_id(role.get('practitioner'), 'Practitioner')}"


def _me(page: SignedInPage) -> str:
    """The signed-in user's `Practitioner/x` ("" for a user who is not a practitioner); the
    token names it by its full URL."""
    tokens = page.session.tokens
    found = reference_id({"reference": tokens.fhir_user if tokens else ""}, "Practitioner")
    return f"Practitioner/{found}" if found else ""


def _may_edit(page: SignedInPage, role: Resource) -> bool:
    """An admin edits anyone's hours; a practitioner only their own (the API agrees)."""
    return page.role == ADMIN or _practitioner_of(role) == _me(page)


@router.get("/availability")
async def clinicians(page: Editor) -> Response:
    """The clinicians whose hours this user may edit; a practitioner with one role goes
    straight to it."""
    params = [("_count", "200")]
    if page.role == PRACTITIONER:
        params.append(("practitioner", _me(page)))
    roles = entries(await page.api.search("PractitionerRole", params), "PractitionerRole")
    if page.role == PRACTITIONER and len(roles) == 1:
        return page.redirect(page.url(f"/availability/{roles[0]['id']}"))
    rows = [(page.url(f"/availability/{role['id']}"), effects.role_name(role)) for role in roles]
    return page.render(
        "clinic/availability_choices.html",
        title=page._("Availability"),
        rows=sorted(rows, key=lambda row: row[1]),
        intro=page._("Choose whose weekly hours and time off to change."),
        empty=page._("No clinician's availability can be changed from your account."),
    )


async def _editor_page(
    page: SignedInPage,
    role: Resource,
    *,
    days: list[forms.Day] | None = None,
    new: forms.NewPeriod | None = None,
    errors: list[FieldError] | None = None,
    notice: str | None = None,
    status: int | None = None,
) -> Response:
    location = await effects.location_of(page.api, role)
    zone = zone_of(location)
    stored = [
        (str(item.get("description", "")), item.get("during") or {})
        for item in role.get("notAvailable", [])
    ]
    actors = {f"PractitionerRole/{role['id']}", _practitioner_of(role)}
    return page.render(
        "clinic/availability.html",
        title=page._("Availability of %(name)s") % {"name": effects.role_name(role)},
        status=status or (400 if errors else 200),
        errors=errors,
        role=role,
        place=name_of(location),
        zone=str(zone),
        days=forms.week_of_rules(role.get("availableTime", [])) if days is None else days,
        codes=forms.DAY_CODES,
        names=forms.DAY_NAMES,
        months=MONTHS,
        periods=forms.periods_of(stored, zone),
        new=new or forms.NewPeriod(),
        version=effects.version_of(role),
        notice=notice,
        saved=page.request.query_params.get("saved") == "1",
        outside=await effects.outside(page, actors, zone),
        choosing=page.role == ADMIN,  # a practitioner's list is usually this page itself
    )


async def _editable(page: SignedInPage, role_id: str) -> Resource:
    role = await page.api.read("PractitionerRole", role_id)
    if not _may_edit(page, role):
        raise RoleRefused
    return role


@router.get("/availability/{role_id}")
async def editor(page: Editor, role_id: str) -> Response:
    return await _editor_page(page, await _editable(page, role_id))


@router.post("/availability/{role_id}")
async def save(page: Editor, role_id: str, form: CheckedForm) -> Response:
    role = await _editable(page, role_id)
    zone = zone_of(await effects.location_of(page.api, role))
    typed = forms.days_of_form(form)
    new = forms.new_period_of_form(form)
    period, period_errors = forms.check_period(new, zone, page._)
    errors = forms.check_week(typed, page._) + period_errors
    if errors:
        return await _editor_page(page, role, days=typed, new=new, errors=errors)
    stored = role.get("notAvailable", [])
    gone = forms.removed(form, len(stored))
    kept = [item for n, item in enumerate(stored) if n not in gone]
    if period is not None:
        kept.append({"description": new.description or page._("Time off"), "during": period})
    changed = {k: v for k, v in role.items() if k not in ("availableTime", "notAvailable")}
    rules = forms.rules_of_week(forms.copied(typed))
    changed["availableTime"] = rules  # never empty: `check_week` wants some hours
    changed |= {"notAvailable": kept} if kept else {}
    if await effects.save(page.api, changed, form, f"PractitionerRole/{role_id}"):
        return page.redirect(page.url(f"/availability/{role_id}", saved="1"))
    notice = page._(
        "Someone else changed these hours after you opened this page, so your changes were "
        "not saved. This page now shows the current hours: make your changes again."
    )
    current = await _editable(page, role_id)
    return await _editor_page(page, current, notice=notice, status=409)
