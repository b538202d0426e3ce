"""Clinic closures and holidays (`/clinic/closures`), for an admin: per Location, which
public-holiday calendar closes it and the extra days it is closed.

Both live on the Location (the extensions `booking-holiday-calendar` and
`booking-closure`, as the scheduling engine reads them); saving PUTs it with
`If-Match`, regenerates the Slots of its Schedules and lists the booked
Appointments now outside availability, as the availability editor does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import holidays
from fastapi import APIRouter
from fastapi.responses import Response

from fhir_server.ui.clinic import availability_effects as effects
from fhir_server.ui.clinic import availability_form as forms
from fhir_server.ui.clinic.roles import Admin
from fhir_server.ui.fhir_api import entries
from fhir_server.ui.portal.booking_model import MONTHS, Resource, name_of, reference_id, zone_of
from fhir_server.ui.web import CheckedForm, FieldError, SignedInPage

router = APIRouter()

_BASE = "https://clinic-booking.example.org/fhir/StructureDefinition"
HOLIDAY_CALENDAR = f"{_BASE}/booking-holiday-calendar"
CLOSURE = f"{_BASE}/booking-closure"
_CODE = re.compile(r"^([A-Z]{2})(?:-([A-Z0-9]{1,6}))?$")
ADDRESS, OTHER, NONE = "address", "other", "none"


def _calendar(location: Resource) -> tuple[str, str]:
    """(choice, code) the form shows for the Location's holiday calendar extension."""
    for item in location.get("extension", []):
        if item.get("url") == HOLIDAY_CALENDAR:
            code = str(item.get("valueString", ""))
            return (NONE, "") if code.lower() == NONE else (OTHER, code)
    return ADDRESS, ""


def _address_calendar(location: Resource) -> str:
    """The calendar the Location's address gives (`US-NY`), "" when it names no country."""
    address = location.get("address") or {}
    country = str(address.get("country") or "").strip().upper()
    state = str(address.get("state") or "").strip().upper()
    return f"{country}-{state}" if country and state else country


def _closures(location: Resource) -> list[tuple[str, Resource]]:
    """(description, Period) of each stored closure."""
    found = []
    for item in location.get("extension", []):
        if item.get("url") != CLOSURE:
            continue
        parts = {p.get("url"): p for p in item.get("extension", [])}
        found.append(
            (
                str(parts.get("description", {}).get("valueString", "")),
                parts.get("during", {}).get("valuePeriod", {}),
            )
        )
    return found


def check_calendar(
    choice: str, code: str, _: Callable[[str], str]
) -> tuple[str | None, list[FieldError]]:
    """The extension value for the chosen calendar (None: the address's) and its errors."""
    if choice == NONE:
        return NONE, []
    if choice != OTHER:
        return None, []
    found = _CODE.match(code.strip().upper())
    supported = holidays.list_supported_countries()
    if found is None or found.group(1) not in supported:
        message = _("Enter a country code such as GB or FR, or a region such as GB-ENG")
        return None, [FieldError(message, "calendar-code")]
    region = found.group(2)
    if region and region not in supported[found.group(1)]:
        message = _("That region is not one of the country's holiday calendars")
        return None, [FieldError(message, "calendar-code")]
    return found.group(0), []


@router.get("/closures")
async def locations(page: Admin) -> Response:
    found = entries(await page.api.search("Location", [("_count", "200")]), "Location")
    rows = [(page.url(f"/closures/{loc['id']}"), name_of(loc) or str(loc["id"])) for loc in found]
    return page.render(
        "clinic/availability_choices.html",
        title=page._("Closures and holidays"),
        rows=sorted(rows, key=lambda row: row[1]),
        intro=page._("Choose a clinic to set its public holidays and closed days."),
        empty=page._("There is no clinic location yet."),
    )


async def _actors_at(page: SignedInPage, location: Resource) -> set[str]:
    """The Location and the clinicians of its Schedules: an Appointment naming one of them
    there is affected by its closures (an Appointment need not name the Location)."""
    here = f"Location/{location['id']}"
    schedules = await effects.schedules_of(page.api, here)
    clinicians = {
        f"PractitionerRole/{rid}"
        for schedule in schedules
        for actor in schedule.get("actor", [])
        if (rid := reference_id(actor, "PractitionerRole"))
    }
    return {here, *clinicians}


async def _page(
    page: SignedInPage,
    location: Resource,
    *,
    choice: tuple[str, str] | None = None,
    new: forms.NewPeriod | None = None,
    errors: list[FieldError] | None = None,
    notice: str | None = None,
    status: int | None = None,
) -> Response:
    zone = zone_of(location)
    chosen, code = choice or _calendar(location)
    return page.render(
        "clinic/closures.html",
        title=page._("Closures and holidays of %(name)s") % {"name": name_of(location)},
        status=status or (400 if errors else 200),
        errors=errors,
        location=location,
        zone=str(zone),
        chosen=chosen,
        code=code,
        address_calendar=_address_calendar(location),
        periods=forms.periods_of(_closures(location), zone),
        new=new or forms.NewPeriod(),
        months=MONTHS,
        version=effects.version_of(location),
        notice=notice,
        saved=page.request.query_params.get("saved") == "1",
        outside=await effects.outside(page, await _actors_at(page, location), zone),
    )


@router.get("/closures/{location_id}")
async def closures(page: Admin, location_id: str) -> Response:
    return await _page(page, await page.api.read("Location", location_id))


@router.post("/closures/{location_id}")
async def save(page: Admin, location_id: str, form: CheckedForm) -> Response:
    location = await page.api.read("Location", location_id)
    zone = zone_of(location)
    choice = (str(form.get("calendar", ADDRESS)), str(form.get("calendar-code", "")).strip())
    calendar, errors = check_calendar(*choice, page._)
    new = forms.new_period_of_form(form)
    period, period_errors = forms.check_period(new, zone, page._, times=False)
    errors += period_errors
    if errors:
        return await _page(page, location, choice=choice, new=new, errors=errors)
    stored = [item for item in location.get("extension", []) if item.get("url") == CLOSURE]
    gone = forms.removed(form, len(stored))
    kept = [item for n, item in enumerate(stored) if n not in gone]
    if period is not None:
        parts = [{"url": "during", "valuePeriod": period}]
        if new.description:
            parts.append({"url": "description", "valueString": new.description})
        kept.append({"url": CLOSURE, "extension": parts})
    others = [
        item
        for item in location.get("extension", [])
        if item.get("url") not in (CLOSURE, HOLIDAY_CALENDAR)
    ]
    named = [{"url": HOLIDAY_CALENDAR, "valueString": calendar}] if calendar else []
    changed = {k: v for k, v in location.items() if k != "extension"}
    if others or named or kept:
        changed["extension"] = [*others, *named, *kept]
    if await effects.save(page.api, changed, form, f"Location/{location_id}"):
        return page.redirect(page.url(f"/closures/{location_id}", saved="1"))
    notice = page._(
        "Someone else changed this clinic's closures after you opened this page, so your "
        "changes were not saved. This page now shows the current ones: make your changes again."
    )
    current = await page.api.read("Location", location_id)
    return await _page(page, current, notice=notice, status=409)
