"""The availability editor and the closures page against the real app, store and Redis: a
practitioner saves their own weekly hours and time off, an admin a clinic's holidays and
closed days, through the FHIR API (version-checked); the Slots follow and the booked
appointments now outside availability are listed; mistakes and other people's hours
change nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, add_user, bearer, create, mint
from tests.integration.portal_support import CLINIC, portal_app, portal_csrf, sign_in

FHIR = {"Content-Type": "application/fhir+json"}
ZONE = "Europe/London"
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _role(practitioner: str, location: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner}", "display": name},
        "location": [{"reference": f"Location/{location}"}],
        "availableTime": [
            {
                "daysOfWeek": EVERY_DAY,
                "availableStartTime": "09:00:00",
                "availableEndTime": "17:00:00",
            }
        ],
    }


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from portal_app(settings_factory)


@pytest.fixture(scope="module")
def world(app: TestClient) -> dict[str, str]:
    """Dr Ada (role, Schedule at a London site, one patient booked tomorrow 10:00) and
    Dr Ben; logins for both, the front desk and an admin."""
    location = create(
        app,
        {
            "resourceType": "Location",
            "name": "Riverside London",
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": ZONE}
            ],
            "address": {"country": "none"},
        },
    )
    ada = create(app, {"resourceType": "Practitioner", "name": [{"family": "Ada"}]})
    ben = create(app, {"resourceType": "Practitioner", "name": [{"family": "Ben"}]})
    role = create(app, _role(ada, location, "Dr Ada"))
    other = create(app, _role(ben, location, "Dr Ben"))
    schedule = create(
        app,
        {
            "resourceType": "Schedule",
            "active": True,
            "actor": [
                {"reference": f"PractitionerRole/{role}"},
                {"reference": f"Location/{location}"},
            ],
        },
    )
    patient = create(
        app, {"resourceType": "Patient", "name": [{"family": "Moss", "given": ["Rita"]}]}
    )
    add_user(app, "avail-ada", "practitioner", f"Practitioner/{ada}")
    add_user(app, "avail-ben", "practitioner", f"Practitioner/{ben}")
    add_user(app, "avail-desk", "frontdesk", None)
    add_user(app, "avail-admin", "admin", None)
    return {
        "location": location,
        "role": role,
        "other": other,
        "schedule": schedule,
        "patient": patient,
        "ada": ada,
    }


@pytest.fixture
def browser(app: TestClient) -> TestClient:
    app.cookies.clear()
    return app


def _admin(app: TestClient) -> dict[str, str]:
    return bearer(mint(app, "user/*.cruds", role="admin")) | FHIR


def _tomorrow_at(hour: int) -> str:
    day = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo(ZONE)).date()
    local = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(ZONE))
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _book_tomorrow_at(app: TestClient, world: dict[str, str], hour: int) -> str:
    """Generate Ada's Slots and book the one tomorrow at `hour` London time for the patient."""
    headers = _admin(app)
    now = datetime.now(UTC)
    generated = app.post(
        f"{BASE}/Schedule/{world['schedule']}/$generate-slots",
        params={"start": now.isoformat(), "end": (now + timedelta(days=3)).isoformat()},
        headers=headers,
    )
    assert generated.status_code == 200, generated.text
    slots = app.get(
        f"{BASE}/Slot",
        params={"schedule": f"Schedule/{world['schedule']}", "start": _tomorrow_at(hour)},
        headers=headers,
    ).json()
    slot = slots["entry"][0]["resource"]
    booked = app.post(
        f"{BASE}/Appointment",
        json={
            "resourceType": "Appointment",
            "status": "booked",
            "start": slot["start"],
            "end": slot["end"],
            "slot": [{"reference": f"Slot/{slot['id']}"}],
            "participant": [
                {"actor": {"reference": f"Patient/{world['patient']}"}, "status": "accepted"},
                {
                    "actor": {"reference": f"PractitionerRole/{world['role']}"},
                    "status": "accepted",
                },
            ],
        },
        headers=headers,
    )
    assert booked.status_code == 201, booked.text
    return str(booked.json()["id"])


def _stored_role(app: TestClient, rid: str) -> dict[str, Any]:
    read = app.get(f"{BASE}/PractitionerRole/{rid}", headers=_admin(app))
    assert read.status_code == 200
    body: dict[str, Any] = read.json()
    return body


def _form(page: str, **fields: str) -> dict[str, str]:
    version = re.search(r'name="version" value="([^"]*)"', page)
    assert version
    return {"csrf": portal_csrf(page), "version": version.group(1), **fields}


def _every_day(start: str, end: str) -> dict[str, str]:
    return {f"{d}-1-{k}": v for d in EVERY_DAY for k, v in (("start", start), ("end", end))}


def test_a_practitioner_saves_hours_and_time_off_and_sees_who_is_now_outside(
    browser: TestClient, world: dict[str, str]
) -> None:
    appointment = _book_tomorrow_at(browser, world, 10)
    sign_in(browser, "avail-ada", "/clinic/availability", site=CLINIC)
    landing = browser.get(f"{CLINIC}/availability", follow_redirects=False)
    assert landing.headers["location"] == f"/clinic/availability/{world['role']}"
    page = browser.get(f"{CLINIC}/availability/{world['role']}")
    assert page.status_code == 200
    assert 'value="09:00"' in page.text and 'value="17:00"' in page.text
    assert "No booked appointment is outside availability." in page.text
    assert page.headers["X-Portal-Fhir-Calls"] == "3"  # role, its Location, the flagged list
    # Mornings off from now on, two pairs on Monday, and a week of leave in a month.
    leave = (datetime.now(UTC) + timedelta(days=40)).date()
    fields = _every_day("13:00", "17:00") | {
        "mon-2-start": "18:00",
        "mon-2-end": "19:30",
        "off-description": "Conference",
        "off-start": leave.isoformat(),
        "off-end": (leave + timedelta(days=4)).isoformat(),
        "off-all-day": "yes",
    }
    saved = browser.post(
        f"{CLINIC}/availability/{world['role']}",
        data=_form(page.text, **fields),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:2000]
    assert saved.headers["location"] == f"/clinic/availability/{world['role']}?saved=1"
    stored = _stored_role(browser, world["role"])
    assert stored["availableTime"] == [
        {"daysOfWeek": EVERY_DAY, "availableStartTime": "13:00:00", "availableEndTime": "17:00:00"},
        {"daysOfWeek": ["mon"], "availableStartTime": "18:00:00", "availableEndTime": "19:30:00"},
    ]
    assert stored["notAvailable"] == [
        {
            "description": "Conference",
            "during": {"start": leave.isoformat(), "end": (leave + timedelta(days=4)).isoformat()},
        }
    ]
    assert stored["practitioner"]["display"] == "Dr Ada"  # the rest is as it was
    # The Slots followed: no free morning Slot is left tomorrow.
    morning = browser.get(
        f"{BASE}/Slot",
        params={
            "schedule": f"Schedule/{world['schedule']}",
            "start": _tomorrow_at(9),
            "status": "free",
        },
        headers=_admin(browser),
    ).json()
    assert morning.get("total", len(morning.get("entry", []))) == 0
    after = browser.get(saved.headers["location"])
    assert "Availability saved." in after.text
    assert "Rita" in after.text and "Moss" in after.text
    assert after.headers["X-Portal-Fhir-Calls"] == "4"  # + one search for every patient listed
    assert "Ask the front desk to move it" in after.text  # their page is the front desk's
    browser.cookies.clear()
    sign_in(browser, "avail-admin", "/clinic/", site=CLINIC)
    seen = browser.get(f"{CLINIC}/availability/{world['role']}")
    assert f'<a href="/clinic/appointments/{appointment}">Reschedule' in seen.text
    browser.cookies.clear()
    assert "Conference" in after.text
    # Mornings back: the appointment fits again and is no longer listed.
    sign_in(browser, "avail-ada", "/clinic/", site=CLINIC)
    again = browser.get(f"{CLINIC}/availability/{world['role']}")
    back = browser.post(
        f"{CLINIC}/availability/{world['role']}",
        data=_form(again.text, **_every_day("09:00", "17:00")),
    )
    assert back.status_code == 200 and "Availability saved." in back.text
    assert "Rita" not in back.text
    assert "No booked appointment is outside availability." in back.text


def test_mistakes_are_listed_with_links_to_their_fields_and_nothing_is_saved(
    browser: TestClient, world: dict[str, str]
) -> None:
    sign_in(browser, "avail-admin", "/clinic/", site=CLINIC)
    before = _stored_role(browser, world["other"])
    clinicians = browser.get(f"{CLINIC}/availability")
    assert clinicians.status_code == 200
    assert f'href="/clinic/availability/{world["other"]}">Dr Ben</a>' in clinicians.text
    assert f'href="/clinic/availability/{world["role"]}">Dr Ada</a>' in clinicians.text
    page = browser.get(f"{CLINIC}/availability/{world['other']}")
    fields = {
        "mon-1-start": "09:00",
        "mon-1-end": "12:00",
        "mon-2-start": "11:00",  # overlaps 09:00-12:00
        "mon-2-end": "13:00",
        "tue-1-start": "15:00",
        "tue-1-end": "14:00",  # end before start
        "wed-1-start": "9am",  # not a time
        "wed-1-end": "12:00",
        "off-start": "2030-02-30",  # not a date
        "off-all-day": "yes",
    }
    refused = browser.post(
        f"{CLINIC}/availability/{world['other']}", data=_form(page.text, **fields)
    )
    assert refused.status_code == 400
    assert "<title>Error:" in refused.text
    for field in ("mon-2-start", "tue-1-end", "wed-1-start", "off-start"):
        assert f'href="#{field}"' in refused.text, field
        assert f'id="{field}-error"' in refused.text, field
    assert 'value="9am"' in refused.text  # what was typed is kept
    after = _stored_role(browser, world["other"])
    assert after["meta"]["versionId"] == before["meta"]["versionId"]


def test_a_concurrent_edit_is_a_message_not_a_lost_update(
    browser: TestClient, world: dict[str, str]
) -> None:
    sign_in(browser, "avail-admin", "/clinic/", site=CLINIC)
    page = browser.get(f"{CLINIC}/availability/{world['other']}")
    # Someone else saves first.
    current = _stored_role(browser, world["other"])
    current["availableTime"][0]["availableEndTime"] = "16:00:00"
    headers = _admin(browser) | {"If-Match": f'W/"{current["meta"]["versionId"]}"'}
    assert (
        browser.put(
            f"{BASE}/PractitionerRole/{world['other']}", json=current, headers=headers
        ).status_code
        == 200
    )
    late = browser.post(
        f"{CLINIC}/availability/{world['other']}",
        data=_form(page.text, **_every_day("08:00", "12:00")),
    )
    assert late.status_code == 409
    assert "Someone else changed these hours" in late.text
    assert 'value="16:00"' in late.text  # the page shows theirs
    assert (
        _stored_role(browser, world["other"])["availableTime"][0]["availableEndTime"] == "16:00:00"
    )


@pytest.mark.parametrize("username", ["avail-desk", "avail-ben"])
def test_the_front_desk_and_other_practitioners_get_the_403_page(
    browser: TestClient, world: dict[str, str], username: str
) -> None:
    sign_in(browser, username, "/clinic/", site=CLINIC)
    before = _stored_role(browser, world["role"])
    opened = browser.get(f"{CLINIC}/availability/{world['role']}")
    assert opened.status_code == 403 and "You cannot see this page" in opened.text
    home = browser.get(f"{CLINIC}/")
    posted = browser.post(
        f"{CLINIC}/availability/{world['role']}",
        data={
            "csrf": portal_csrf(home.text),
            "version": before["meta"]["versionId"],
            **_every_day("08:00", "09:00"),
        },
    )
    assert posted.status_code == 403
    assert _stored_role(browser, world["role"])["meta"]["versionId"] == before["meta"]["versionId"]


def test_the_api_lets_a_practitioner_change_only_their_own_hours(
    app: TestClient, world: dict[str, str]
) -> None:
    token = mint(app, "user/*.cruds", role="practitioner", fhir_user=f"Practitioner/{world['ada']}")
    own = _stored_role(app, world["role"])
    headers = bearer(token) | FHIR
    renamed = own | {"practitioner": {"reference": "Practitioner/someone-else"}}
    refused = app.put(f"{BASE}/PractitionerRole/{world['role']}", json=renamed, headers=headers)
    assert refused.status_code == 403
    other = _stored_role(app, world["other"])
    theirs = app.put(f"{BASE}/PractitionerRole/{world['other']}", json=other, headers=headers)
    assert theirs.status_code in (403, 404)
    hours = own | {"availabilityExceptions": "Not on bank holidays"}
    allowed = app.put(f"{BASE}/PractitionerRole/{world['role']}", json=hours, headers=headers)
    assert allowed.status_code == 200, allowed.text


CLOSURE = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-closure"
CALENDAR = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-holiday-calendar"


def _stored_location(app: TestClient, rid: str) -> dict[str, Any]:
    read = app.get(f"{BASE}/Location/{rid}", headers=_admin(app))
    assert read.status_code == 200
    body: dict[str, Any] = read.json()
    return body


def test_an_admin_closes_a_clinic_for_a_day_and_picks_its_holiday_calendar(
    browser: TestClient, world: dict[str, str]
) -> None:
    appointment = _book_tomorrow_at(browser, world, 14)
    sign_in(browser, "avail-admin", "/clinic/closures", site=CLINIC)
    listing = browser.get(f"{CLINIC}/closures")
    assert f'href="/clinic/closures/{world["location"]}"' in listing.text
    page = browser.get(f"{CLINIC}/closures/{world['location']}")
    assert page.status_code == 200 and "No closed day is planned." in page.text
    tomorrow = datetime.fromisoformat(_tomorrow_at(14)).astimezone(ZoneInfo(ZONE)).date()
    fields = {
        "calendar": "other",
        "calendar-code": "gb-eng",
        "off-description": "Flood",
        "off-start": tomorrow.isoformat(),
    }
    saved = browser.post(
        f"{CLINIC}/closures/{world['location']}",
        data=_form(page.text, **fields),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:2000]
    stored = _stored_location(browser, world["location"])
    extensions = {e["url"]: e for e in stored["extension"]}
    assert extensions[CALENDAR]["valueString"] == "GB-ENG"
    assert extensions[CLOSURE]["extension"] == [
        {
            "url": "during",
            "valuePeriod": {"start": tomorrow.isoformat(), "end": tomorrow.isoformat()},
        },
        {"url": "description", "valueString": "Flood"},
    ]
    free = browser.get(
        f"{BASE}/Slot",
        params=[
            ("schedule", f"Schedule/{world['schedule']}"),
            ("start", f"ge{_tomorrow_at(0)}"),
            ("start", f"lt{_tomorrow_at(23)}"),
            ("status", "free"),
        ],
        headers=_admin(browser),
    ).json()
    assert not free.get("entry")  # the whole day's free Slots are gone
    after = browser.get(saved.headers["location"])
    assert "Closures saved." in after.text and "Flood" in after.text
    assert f'<a href="/clinic/appointments/{appointment}">Reschedule' in after.text
    desk = browser.get(f"{CLINIC}/appointments/{appointment}")  # the front desk's page
    assert desk.status_code == 200 and "Change the time" in desk.text
    # Removing the closure and going back to the address's calendar.
    again = browser.post(
        f"{CLINIC}/closures/{world['location']}",
        data=_form(after.text, calendar="address", remove="0"),
        follow_redirects=False,
    )
    assert again.status_code == 303
    urls = {e["url"] for e in _stored_location(browser, world["location"])["extension"]}
    assert CLOSURE not in urls and CALENDAR not in urls


def test_closure_mistakes_change_nothing(browser: TestClient, world: dict[str, str]) -> None:
    sign_in(browser, "avail-admin", "/clinic/", site=CLINIC)
    before = _stored_location(browser, world["location"])
    page = browser.get(f"{CLINIC}/closures/{world['location']}")
    fields = {
        "calendar": "other",
        "calendar-code": "Narnia",
        "off-start": "2030-03-10",
        "off-end": "2030-03-01",
    }
    refused = browser.post(
        f"{CLINIC}/closures/{world['location']}", data=_form(page.text, **fields)
    )
    assert refused.status_code == 400
    for field in ("calendar-code", "off-end"):
        assert f'href="#{field}"' in refused.text, field
    after = _stored_location(browser, world["location"])
    assert after["meta"]["versionId"] == before["meta"]["versionId"]


@pytest.mark.parametrize("username", ["avail-desk", "avail-ada"])
def test_only_an_admin_opens_the_closures(
    browser: TestClient, world: dict[str, str], username: str
) -> None:
    sign_in(browser, username, "/clinic/", site=CLINIC)
    assert browser.get(f"{CLINIC}/closures").status_code == 403
    refused = browser.get(f"{CLINIC}/closures/{world['location']}")
    assert refused.status_code == 403 and "You cannot see this page" in refused.text


def test_slots_made_beyond_the_horizon_follow_the_new_hours_too(
    browser: TestClient, world: dict[str, str]
) -> None:
    """Slots generated further ahead than the 28 days a save regenerates by default (a
    longer `generate-slots` run) are regenerated up to the last of them: no morning stays
    bookable 50 days ahead once mornings are off."""
    headers = _admin(browser)
    far = datetime.now(UTC) + timedelta(days=50)
    made = browser.post(
        f"{BASE}/Schedule/{world['schedule']}/$generate-slots",
        params={"start": far.isoformat(), "end": (far + timedelta(days=2)).isoformat()},
        headers=headers,
    )
    assert made.status_code == 200, made.text
    day = (far + timedelta(days=1)).astimezone(ZoneInfo(ZONE)).date()

    def free_at(hour: int) -> int:
        at = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
        found = browser.get(
            f"{BASE}/Slot",
            params={
                "schedule": f"Schedule/{world['schedule']}",
                "start": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "status": "free",
            },
            headers=headers,
        ).json()
        return len(found.get("entry", []))

    assert (free_at(10), free_at(14)) == (1, 1)
    sign_in(browser, "avail-ada", "/clinic/", site=CLINIC)
    page = browser.get(f"{CLINIC}/availability/{world['role']}")
    saved = browser.post(
        f"{CLINIC}/availability/{world['role']}",
        data=_form(page.text, **_every_day("13:00", "17:00")),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:2000]
    assert (free_at(10), free_at(14)) == (0, 1)
    again = browser.get(f"{CLINIC}/availability/{world['role']}")
    back = browser.post(
        f"{CLINIC}/availability/{world['role']}",
        data=_form(again.text, **_every_day("09:00", "17:00")),
        follow_redirects=False,
    )
    assert back.status_code == 303
    assert free_at(10) == 1
