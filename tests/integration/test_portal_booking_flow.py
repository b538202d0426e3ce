"""The booking pages in the browser's place: a signed-in patient finds a time, holds it,
books, reschedules and cancels through /portal, against the real app, store and Redis."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from icalendar import Calendar

from fhir_server.demo import load_demo
from fhir_server.publishing.extensions import BOOKING_REFERRAL
from fhir_server.scheduling.booking import release_expired_holds
from fhir_server.scheduling.generation import generate_rolling
from fhir_server.settings import Settings
from fhir_server.ui.portal import booking_pages as pages
from tests.integration.auth_helpers import call, create
from tests.integration.booking_portal_setup import (
    PHONE,
    Clinic,
    PatientClient,
    add_slot,
    days_ahead,
    seed_clinic,
)
from tests.integration.portal_support import (
    PORTAL,
    add_patient_login,
    portal_app,
    portal_csrf,
    sign_in,
)
from tests.integration.scheduling_setup import instant


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from portal_app(settings_factory)


@pytest.fixture(scope="module")
def site(app: TestClient) -> Clinic:
    return seed_clinic(app)


_logins = iter(range(1000))


@pytest.fixture
def patient(app: TestClient) -> str:
    """A new patient, signed in to the portal (a fresh cookie jar); their Patient id."""
    app.cookies.clear()
    username = f"booker{next(_logins)}"
    patient_id = add_patient_login(app, username, "Booker")
    sign_in(app, username)
    return patient_id


def post(app: TestClient, path: str, data: dict[str, str], page: str | None = None) -> Response:
    """Submit a portal form the way a browser does (with the page's CSRF token)."""
    token = portal_csrf(app.get(page or f"{PORTAL}/").text)
    return app.post(f"{PORTAL}{path}", data={**data, "csrf": token}, follow_redirects=False)


def location(response: Response) -> str:
    assert response.status_code == 303, response.text[:800]
    return str(response.headers["location"])


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def title(response: Response) -> str:
    found = re.search(r"<title>(.*?)</title>", response.text, re.S)
    assert found, response.text[:300]
    return unescape(found.group(1)).strip()


def text(response: Response) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


def appointment(app: TestClient, patient_id: str, appointment_id: str) -> pages.AppointmentView:
    api = PatientClient(app, patient_id)
    view: pages.AppointmentView = api.run(pages.appointment, appointment_id)
    return view


def choose_time(app: TestClient, site: Clinic, clinician: str, slot: str, day: str) -> str:
    """Service, clinician, day and time pages in turn; the address the time form sends to."""
    to_clinician = location(post(app, "/book/service", {"service": site.service}))
    assert to_clinician.startswith("/portal/book/clinician?")
    to_day = location(post(app, "/book/clinician", {**query(to_clinician), "clinician": clinician}))
    to_time = location(post(app, "/book/day", {**query(to_day), "day": day}))
    assert query(to_time)["day"] == day
    return location(post(app, "/book/time", {**query(to_time), "slot": slot}))


def test_a_whole_booking_names_the_zone_and_ends_on_a_bookmarkable_page(
    app: TestClient, site: Clinic, patient: str
) -> None:
    start = days_ahead(10, 10)
    slot = add_slot(app, site.schedules["Okafor"], start)
    day = start.astimezone(ZoneInfo("Europe/London")).date()
    assert location(app.get(f"{PORTAL}/book", follow_redirects=False)) == "/portal/book/service"

    time_page = app.get(
        f"{PORTAL}/book/time",
        params={"service": site.service, "clinician": "any", "day": day.isoformat()},
    )
    heading = f"Choose a time on {day:%A} {day.day} {day:%B}"
    assert title(time_page).startswith(heading)
    assert re.search(rf"<legend><h1>{heading}</h1></legend>", time_page.text)
    assert f'type="radio" id="slot-0" name="slot" value="{slot}"' in time_page.text
    assert f"{start.astimezone(ZoneInfo('Europe/London')):%H:%M} (Europe/London)" in text(time_page)

    week = app.get(
        f"{PORTAL}/book/day",
        params={"service": site.service, "clinician": "any", "week": day.isoformat()},
    )
    assert f'name="day" value="{day.isoformat()}"' in week.text
    assert " checked" not in week.text  # moving between weeks chooses nothing
    check_url = choose_time(app, site, site.schedules["Okafor"], slot, day.isoformat())
    check = app.get(check_url)
    assert check.status_code == 200
    assert "We are holding this time for you until" in text(check)
    assert "(Europe/London)" in text(check)
    for change in ("/portal/book/service?", "/portal/book/clinician?", "/portal/book/day?"):
        assert f'href="{change}' in check.text
    hold_id = query(check_url)["hold"]
    assert appointment(app, patient, hold_id).status == "pending"

    done = location(post(app, "/book/check", {**query(check_url), "comment": "Step-free access"}))
    assert done == f"/portal/appointments/{hold_id}?done=booked"
    again = post(app, "/book/check", query(check_url))  # sent twice: no error, no change
    assert location(again) == f"/portal/appointments/{hold_id}"
    confirmation = app.get(f"{PORTAL}/appointments/{hold_id}")  # bookmarkable, no query
    words = text(confirmation)
    for expected in ("GP appointment", "Dr Okafor", "Harbour Clinic", hold_id, "Booked"):
        assert expected in words
    for link in ("calendar.ics", "reschedule", "cancel"):
        assert f'href="/portal/appointments/{hold_id}/{link}"' in confirmation.text
    view = appointment(app, patient, hold_id)
    assert (view.status, view.appointment["comment"]) == ("booked", "Step-free access")

    ics = app.get(f"{PORTAL}/appointments/{hold_id}/calendar.ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    assert "DTSTART;TZID=Europe/London:" in ics.text
    event = next(iter(Calendar.from_ical(ics.content).walk("VEVENT")))
    assert event.decoded("dtstart") == start


def test_an_expired_hold_offers_the_nearest_times_and_keeps_what_was_typed(
    app: TestClient, site: Clinic, patient: str
) -> None:
    start = days_ahead(11, 10)
    slot = add_slot(app, site.schedules["Shah"], start)
    nearest = add_slot(app, site.schedules["Shah"], start + timedelta(hours=1))
    day = start.astimezone(ZoneInfo("Europe/London")).date().isoformat()
    check_url = choose_time(app, site, site.schedules["Shah"], slot, day)
    store = app.app.state.services.store  # type: ignore[attr-defined]
    assert call(app, release_expired_holds, store, pages.utc_now() + timedelta(hours=1)) >= 1

    refused = post(app, "/book/check", {**query(check_url), "comment": "Bring my letter"})
    assert refused.status_code == 409
    assert title(refused).startswith("Error: ")
    assert 'href="#alternatives"' in refused.text
    assert f'name="alternative" value="{nearest}"' in refused.text
    assert ">Bring my letter</textarea>" in refused.text

    again = location(
        post(
            app,
            "/book/alternative",
            {**query(check_url), "alternative": nearest, "comment": "Bring my letter"},
        )
    )
    assert query(again)["comment"] == "Bring my letter"
    assert ">Bring my letter</textarea>" in app.get(again).text
    assert appointment(app, patient, query(again)["hold"]).status == "pending"


def test_a_time_taken_meanwhile_is_an_error_linking_to_the_times_left(
    app: TestClient, site: Clinic, patient: str
) -> None:
    start = days_ahead(12, 9)
    taken = add_slot(app, site.schedules["Okafor"], start)
    left = add_slot(app, site.schedules["Okafor"], start + timedelta(minutes=30))
    other = PatientClient(app, add_patient_login(app, f"other{next(_logins)}", "Other"))
    other.run(pages.hold, taken)
    day = start.astimezone(ZoneInfo("Europe/London")).date().isoformat()
    form = {"service": site.service, "clinician": site.schedules["Okafor"], "day": day}

    refused = post(app, "/book/time", {**form, "slot": taken})
    assert refused.status_code == 400
    assert title(refused).startswith("Error: Choose a time on")
    assert '<a href="#slot-0">Sorry, that time has just been taken' in refused.text
    assert f'id="slot-0" name="slot" value="{left}"' in refused.text
    forged = post(app, "/book/time", {**form, "slot": "Slot-that-never-was"})
    assert forged.status_code == 400


def test_reschedule_shows_both_times_and_swaps_them_in_one_step(
    app: TestClient, site: Clinic, patient: str
) -> None:
    old_start, new_start = days_ahead(13, 10), days_ahead(14, 11)
    old_slot = add_slot(app, site.schedules["Okafor"], old_start)
    new_slot = add_slot(app, site.schedules["Okafor"], new_start)
    zone = ZoneInfo("Europe/London")
    check_url = choose_time(
        app, site, site.schedules["Okafor"], old_slot, old_start.astimezone(zone).date().isoformat()
    )
    old_id = query(check_url)["hold"]
    location(post(app, "/book/check", query(check_url)))

    to_day = location(app.get(f"{PORTAL}/appointments/{old_id}/reschedule", follow_redirects=False))
    assert query(to_day)["reschedule"] == old_id
    new_day = new_start.astimezone(zone).date().isoformat()
    to_check = location(
        post(app, "/book/time", {**query(to_day), "day": new_day, "slot": new_slot})
    )
    check = app.get(to_check)
    words = text(check)
    assert "Previous time" in words and "New time" in words
    assert f"{old_start.astimezone(zone):%H:%M} (Europe/London)" in words
    assert f"{new_start.astimezone(zone):%H:%M} (Europe/London)" in words
    assert appointment(app, patient, old_id).status == "booked"  # nothing changes before

    rival = PatientClient(app, add_patient_login(app, f"rival{next(_logins)}", "Rival"))
    spare = add_slot(app, site.schedules["Okafor"], new_start + timedelta(hours=1))
    held = rival.run(pages.hold, new_slot)
    lost = post(app, "/book/check", query(to_check))
    assert lost.status_code == 409 and f'value="{spare}"' in lost.text
    assert appointment(app, patient, old_id).status == "booked"
    rival.run(pages.release, held, "Changed my mind")

    done = location(post(app, "/book/check", query(to_check)))
    new_id = done.split("/")[-1].split("?")[0]
    assert done.endswith("?done=rescheduled") and new_id != old_id
    assert appointment(app, patient, old_id).status == "cancelled"
    assert appointment(app, patient, new_id).status == "booked"


def test_cancel_with_a_reason_and_the_cut_off_refusal(
    app: TestClient, site: Clinic, patient: str
) -> None:
    api = PatientClient(app, patient)
    later = api.run(
        pages.book_hold,
        api.run(pages.hold, add_slot(app, site.schedules["Shah"], days_ahead(15, 10)))["id"],
    )
    soon_slot = add_slot(app, site.schedules["Shah"], pages.utc_now() + timedelta(hours=5))
    soon = api.run(pages.book_hold, api.run(pages.hold, soon_slot)["id"])

    page = app.get(f"{PORTAL}/appointments/{later['id']}/cancel")
    assert page.status_code == 200 and 'name="reason"' in page.text
    long = post(app, f"/appointments/{later['id']}/cancel", {"reason": "x" * 501})
    assert long.status_code == 400 and title(long).startswith("Error: ")
    done = post(app, f"/appointments/{later['id']}/cancel", {"reason": "Feeling better"})
    assert location(done) == f"/portal/appointments/{later['id']}?done=cancelled"
    cancelled = appointment(app, patient, later["id"]).appointment
    assert (cancelled["status"], cancelled["cancelationReason"]["text"]) == (
        "cancelled",
        "Feeling better",
    )

    too_late = app.get(f"{PORTAL}/appointments/{soon['id']}/cancel")
    assert "You can no longer change this appointment online" in text(too_late)
    assert PHONE in text(too_late)
    refused = post(app, f"/appointments/{soon['id']}/cancel", {"reason": ""})
    assert refused.status_code == 409
    assert appointment(app, patient, soon["id"]).status == "booked"
    listing = text(app.get(f"{PORTAL}/appointments"))
    assert "Cancelled" in listing and "Booked" in listing


def test_an_empty_day_links_to_the_next_free_time_and_nothing_bookable_to_the_phone(
    app: TestClient, site: Clinic, patient: str
) -> None:
    start = days_ahead(20, 10)
    add_slot(app, site.schedules["Shah"], start)
    zone = ZoneInfo("Europe/London")
    empty = (start - timedelta(days=1)).astimezone(zone).date().isoformat()
    page = app.get(
        f"{PORTAL}/book/time",
        params={"service": site.service, "clinician": site.schedules["Shah"], "day": empty},
    )
    assert "There are no free times on this day." in text(page)
    assert "The next free time is" in text(page) and "(Europe/London)" in text(page)
    assert f"day={start.astimezone(zone).date().isoformat()}" in page.text

    nothing = app.get(
        f"{PORTAL}/book/day", params={"service": site.empty_service, "clinician": "any"}
    )
    assert "Contact the clinic to make an appointment" in text(nothing)
    assert PHONE in text(nothing)


def test_a_deep_link_goes_to_check_your_answers_after_sign_in(
    app: TestClient, site: Clinic
) -> None:
    slot = add_slot(app, site.schedules["Okafor"], days_ahead(16, 10))
    app.cookies.clear()
    link = f"/portal/book?slot={slot}&source=referral-42"
    to_sign_in = app.get(f"http://testserver{link}", follow_redirects=False)
    assert to_sign_in.status_code in (302, 303, 307)
    username = f"deep{next(_logins)}"
    patient_id = add_patient_login(app, username, "Deep")
    back = sign_in(app, username, link)
    assert back.headers["location"] == link
    check_url = location(app.get(f"http://testserver{link}", follow_redirects=False))
    assert check_url.startswith("/portal/book/check?")
    assert query(check_url)["source"] == "referral-42"
    assert appointment(app, patient_id, query(check_url)["hold"]).status == "pending"
    store = app.app.state.services.store  # type: ignore[attr-defined]
    held = call(app, store.read, "Appointment", query(check_url)["hold"]).resource
    assert {"url": BOOKING_REFERRAL, "valueString": "referral-42"} in held["extension"]
    assert app.get(check_url).status_code == 200

    gone = app.get(f"{PORTAL}/book", params={"slot": slot})  # held now: not public any more
    assert gone.status_code == 404 and "This time is no longer available" in text(gone)


def test_another_patients_appointment_is_not_found_and_left_alone(
    app: TestClient, site: Clinic, patient: str
) -> None:
    owner_id = add_patient_login(app, f"owner{next(_logins)}", "Owner")
    owner = PatientClient(app, owner_id)
    theirs = owner.run(
        pages.book_hold,
        owner.run(pages.hold, add_slot(app, site.schedules["Okafor"], days_ahead(17, 10)))["id"],
    )
    for path in ("", "/calendar.ics", "/cancel", "/reschedule"):
        page = app.get(f"{PORTAL}/appointments/{theirs['id']}{path}", follow_redirects=False)
        assert page.status_code == 404, path
    refused = post(app, f"/appointments/{theirs['id']}/cancel", {"reason": "mine now"})
    assert refused.status_code == 404
    assert app.get(f"{PORTAL}/book/check", params={"hold": theirs["id"]}).status_code == 404
    assert appointment(app, owner_id, theirs["id"]).status == "booked"
    no_token = app.post(f"{PORTAL}/appointments/{theirs['id']}/cancel", data={"reason": "x"})
    assert no_token.status_code == 403


def _stored(app: TestClient, site: Clinic, patient: str, status: str, days: int) -> str:
    """An Appointment as the clinic left it (setup: written to the store directly)."""
    start = days_ahead(days, 10)
    return create(
        app,
        {
            "resourceType": "Appointment",
            "status": status,
            "start": instant(start),
            "end": instant(start + timedelta(minutes=15)),
            "participant": [
                {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                {"actor": {"reference": f"Location/{site.location}"}, "status": "accepted"},
            ],
        },
    )


def test_status_words_and_french(app: TestClient, site: Clinic, patient: str) -> None:
    api = PatientClient(app, patient)
    held = api.run(pages.hold, add_slot(app, site.schedules["Shah"], days_ahead(18, 10)))
    waiting = _stored(app, site, patient, "pending", 21)
    attended = _stored(app, site, patient, "fulfilled", -3)
    missed = _stored(app, site, patient, "noshow", -2)
    page = app.get(f"{PORTAL}/appointments")
    upcoming, _, past = text(page).partition("Past and cancelled")
    assert "Held for you, not booked yet" in upcoming
    assert "Waiting for the clinic to confirm" in upcoming
    assert "Attended" in past and "Missed" in past
    assert page.text.index(f"/appointments/{missed}") < page.text.index(f"/appointments/{attended}")
    assert f"/appointments/{waiting}" in page.text
    french = app.get(f"{PORTAL}/appointments/{held['id']}", params={"lang": "fr"})
    assert "Réservé temporairement" in text(french)
    start = days_ahead(19, 10)
    add_slot(app, site.schedules["Shah"], start)
    day = start.astimezone(ZoneInfo("Europe/London")).date()
    page = app.get(
        f"{PORTAL}/book/time",
        params={"service": site.service, "clinician": "any", "day": day.isoformat(), "lang": "fr"},
    )
    assert "Choisissez un horaire le " in title(page)
    assert "(Europe/London)" in text(page)


def test_the_demo_clinic_books_through_the_portal(app: TestClient, patient: str) -> None:
    """`make run`'s data: the demo services, clinicians and generated Slots (a week)."""
    store = app.app.state.services.store  # type: ignore[attr-defined]
    call(app, load_demo, store)
    call(app, generate_rolling, store, pages.utc_now(), 7)
    services = app.get(f"{PORTAL}/book/service")
    for name in ("General practice consultation", "Paediatric consultation", "GP appointment"):
        assert name in text(services)
    service = "demo-service-london-gp"
    clinicians = app.get(f"{PORTAL}/book/clinician", params={"service": service})
    assert "Dr Priya Shah" in text(clinicians) and "Anyone available" in text(clinicians)
    week = app.get(f"{PORTAL}/book/day", params={"service": service, "clinician": "any"})
    day = re.findall(r'name="day" value="([0-9-]+)"', week.text)
    if not day:  # the rest of this week is closed: the page points at the next free time
        assert "The next free time is" in text(week)
        day = re.findall(r"day=([0-9-]{10})", week.text)
    times = app.get(
        f"{PORTAL}/book/time", params={"service": service, "clinician": "any", "day": day[0]}
    )
    slot = re.findall(r'name="slot" value="([^"]+)"', times.text)[0]
    assert "(Europe/London)" in text(times)
    form = {"service": service, "clinician": "any", "day": day[0], "slot": slot}
    check_url = location(post(app, "/book/time", form))
    booked = location(post(app, "/book/check", query(check_url)))
    page = app.get(f"http://testserver{booked}")
    assert "Appointment booked" in text(page) and "Riverside Clinic London" in text(page)


def test_the_booking_steps_read_the_clinic_once_per_session(
    app: TestClient, site: Clinic, patient: str
) -> None:
    """The chosen service's clinic is searched on the first step; the next steps of the
    same session reuse it (`fhir_server/recent.py`), a new session searches again."""
    params = {"service": site.service}
    first = app.get(f"{PORTAL}/book/clinician", params=params)
    again = app.get(f"{PORTAL}/book/clinician", params=params)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.headers["x-portal-fhir-calls"] == "1"
    assert again.headers["x-portal-fhir-calls"] == "0"
    assert "Dr Okafor" in text(again)
    username = f"booker{next(_logins)}"
    add_patient_login(app, username, "Other")
    app.cookies.clear()
    sign_in(app, username)
    assert app.get(f"{PORTAL}/book/clinician", params=params).headers["x-portal-fhir-calls"] == "1"
