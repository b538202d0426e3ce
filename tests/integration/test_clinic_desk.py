"""The front desk in the browser's place, against the real app, store and Redis: find a
patient, register one without a duplicate (`Patient/$match`), book, reschedule and cancel
for them with a reason through the portal's booking pages, and the day lists to print."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from fhir_server.settings import Settings
from fhir_server.ui.portal import booking_pages as pages
from tests.integration.auth_helpers import BASE, add_user, bearer, create, mint
from tests.integration.booking_portal_setup import (
    Clinic,
    PatientClient,
    add_slot,
    days_ahead,
    seed_clinic,
)
from tests.integration.portal_support import (
    CLINIC,
    add_patient_login,
    portal_app,
    portal_csrf,
    query_of,
    sign_in,
)

LONDON = ZoneInfo("Europe/London")
CHIDI = {
    "resourceType": "Patient",
    "name": [{"family": "Okonkwo", "given": ["Chidi"]}],
    "gender": "male",
    "birthDate": "1990-02-02",
    "telecom": [
        {"system": "phone", "value": "+234 803 555 0101"},
        {"system": "email", "value": "chidi@example.org"},
    ],
    "identifier": [{"system": "urn:clinic:mrn", "value": "MRN-4471"}],
}


@pytest.fixture(scope="module")
def app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for client in portal_app(settings_factory):
        add_user(client, "desk-user", "frontdesk", None)
        add_patient_login(client, "desk-pat")
        doctor = create(client, {"resourceType": "Practitioner", "name": [{"family": "Desk"}]})
        add_user(client, "desk-doc", "practitioner", f"Practitioner/{doctor}")
        yield client


@pytest.fixture(scope="module")
def site(app: TestClient) -> Clinic:
    return seed_clinic(app)


@pytest.fixture(scope="module")
def chidi(app: TestClient) -> str:
    return create(app, CHIDI)


@pytest.fixture
def desk(app: TestClient) -> TestClient:
    app.cookies.clear()
    sign_in(app, "desk-user", "/clinic/", site=CLINIC)
    return app


def admin(app: TestClient) -> dict[str, str]:
    return bearer(mint(app, "user/*.cruds", role="admin"))


def search(app: TestClient, resource_type: str, **params: str) -> list[dict[str, Any]]:
    found = app.get(f"{BASE}/{resource_type}", params=params, headers=admin(app))
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", []) if e["search"]["mode"] == "match"]


def read(app: TestClient, resource_type: str, resource_id: str) -> dict[str, Any]:
    found = app.get(f"{BASE}/{resource_type}/{resource_id}", headers=admin(app))
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


def text(response: Response) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


def title(response: Response) -> str:
    found = re.search(r"<title>(.*?)</title>", response.text, re.S)
    assert found, response.text[:300]
    return unescape(found.group(1)).strip()


def post(app: TestClient, path: str, data: dict[str, str]) -> Response:
    """Submit a workspace form the way a browser does (with the session's CSRF token)."""
    token = portal_csrf(app.get(f"{CLINIC}/desk").text)
    return app.post(f"{CLINIC}{path}", data={**data, "csrf": token}, follow_redirects=False)


def location(response: Response) -> str:
    assert response.status_code == 303, response.text[:800]
    return str(response.headers["location"])


# -- find -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"name": "chidi okonkwo"},
        {"name": "OKONK", "birthdate": "1990-02-02"},
        {"phone": "0803 555 0101"},  # written another way: its last 9 digits
        {"identifier": "MRN-4471"},
        {"identifier": "urn:clinic:mrn|MRN-4471"},
    ],
)
def test_the_desk_finds_a_patient_by_name_birth_date_phone_or_identifier(
    desk: TestClient, chidi: str, query: dict[str, str]
) -> None:
    found = desk.get(f"{CLINIC}/desk", params=query)
    assert found.status_code == 200, found.text[:500]
    assert f'href="/clinic/desk/patients/{chidi}"' in found.text
    assert "<caption" in found.text and '<th scope="col">' in found.text


def test_a_search_that_matches_nobody_says_so(desk: TestClient, chidi: str) -> None:
    found = desk.get(f"{CLINIC}/desk", params={"name": "Okonkwo", "birthdate": "1991-02-02"})
    assert found.status_code == 200
    assert "No patient matches all of these." in text(found)
    assert chidi not in found.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"birthdate": "1990-13-45"}, "birthdate"),
        ({"name": ""}, "name"),
        ({"phone": "12"}, "phone"),
    ],
)
def test_bad_search_input_is_an_error_summary(
    desk: TestClient, query: dict[str, str], field: str
) -> None:
    refused = desk.get(f"{CLINIC}/desk", params=query)
    assert refused.status_code == 400
    assert title(refused).startswith("Error: ")
    assert f'href="#{field}"' in refused.text and f'id="{field}-error"' in refused.text


# -- register ---------------------------------------------------------------------------


def register(app: TestClient, **fields: str) -> Response:
    return post(app, "/desk/register", fields)


def test_a_near_duplicate_is_found_and_no_second_patient_is_written(
    desk: TestClient, chidi: str
) -> None:
    before = len(search(desk, "Patient", family="Okonkwo"))
    # The same man as the caller gives him: accents, spacing and phone written another way.
    caller = {"given": "Chidi", "family": "OKONKWO", "birthdate": "1990-02-02"}
    caller |= {"gender": "male", "phone": "0803 555 0101"}
    answer = register(desk, **caller)
    assert answer.status_code == 200
    assert title(answer).startswith("Is this patient already registered?")
    assert f'href="/clinic/desk/patients/{chidi}"' in answer.text
    assert "Certain match" in text(answer)
    assert "None of these: register a new patient" not in answer.text  # no way to create
    # Sent anyway (a forged form): refused, nothing written.
    forced = register(desk, step="create", **caller)
    assert forced.status_code == 409
    assert 'href="#matches"' in forced.text
    assert len(search(desk, "Patient", family="Okonkwo")) == before


def test_a_probable_match_is_shown_first_and_the_desk_may_still_register(
    desk: TestClient, chidi: str
) -> None:
    fields = {"given": "Okonkwo", "family": "Chidi", "birthdate": "1990-02-02"}
    fields |= {"phone": "+234 803 555 0101"}  # names swapped: probable, not certain
    shown = register(desk, **fields)
    assert shown.status_code == 200
    assert "Probable match" in text(shown) and chidi in shown.text
    assert "None of these: register a new patient" in shown.text
    assert search(desk, "Patient", family="Chidi") == []
    created = location(register(desk, step="create", **fields))
    new_id = created.split("/")[-1].split("?")[0]
    assert created == f"/clinic/desk/patients/{new_id}?done=registered"
    assert [p["id"] for p in search(desk, "Patient", family="Chidi")] == [new_id]
    page = desk.get(f"http://testserver{created}")
    assert "Patient registered" in page.text and "1990-02-02" in page.text


def test_a_patient_nobody_resembles_is_registered_at_once(desk: TestClient) -> None:
    created = location(
        register(
            desk,
            given="Ines",
            family="Zaragoza-Lind",
            birthdate="2001-07-30",
            gender="female",
            email="ines@example.org",
            identifier="urn:clinic:mrn|MRN-9",
        )
    )
    stored = search(desk, "Patient", family="Zaragoza-Lind")
    assert len(stored) == 1 and created.startswith(f"/clinic/desk/patients/{stored[0]['id']}")
    assert stored[0]["identifier"] == [{"system": "urn:clinic:mrn", "value": "MRN-9"}]
    assert stored[0]["telecom"] == [{"system": "email", "value": "ines@example.org"}]


def test_bad_registration_input_is_an_error_summary_and_writes_nothing(desk: TestClient) -> None:
    bad = {"given": "", "family": "Nowrite", "birthdate": "2999-01-01", "gender": "robot"}
    refused = register(desk, **bad, email="nope")
    assert refused.status_code == 400
    assert title(refused).startswith("Error: ")
    for field in ("given", "birthdate", "gender", "email"):
        assert f'href="#{field}"' in refused.text
    assert 'value="Nowrite"' in refused.text  # what was typed is kept
    assert search(desk, "Patient", family="Nowrite") == []


# -- book, reschedule, cancel -----------------------------------------------------------


def communications(app: TestClient, patient_id: str) -> list[str]:
    found = search(app, "Communication", patient=f"Patient/{patient_id}", _count="50")
    return [c["category"][0]["coding"][0]["code"] for c in found]


def choose_time(app: TestClient, site: Clinic, patient_id: str, slot: str, day: str) -> str:
    """Service, clinician, day and time pages in turn for the patient; the check page's URL."""
    to_clinician = location(
        post(app, "/book/service", {"service": site.service, "patient": patient_id})
    )
    assert to_clinician.startswith("/clinic/book/clinician?")
    chosen = {**query_of(to_clinician), "clinician": site.schedules["Okafor"]}
    to_day = location(post(app, "/book/clinician", chosen))
    to_time = location(post(app, "/book/day", {**query_of(to_day), "day": day}))
    return location(post(app, "/book/time", {**query_of(to_time), "slot": slot}))


def test_the_desk_books_reschedules_and_cancels_with_a_reason_and_the_patient_is_told(
    desk: TestClient, site: Clinic
) -> None:
    patient_id = create(desk, {**CHIDI, "name": [{"family": "Booked", "given": ["Bea"]}]})
    start = days_ahead(9, 10)
    first = add_slot(desk, site.schedules["Okafor"], start)
    later = add_slot(desk, site.schedules["Okafor"], start + timedelta(hours=2))
    day = start.astimezone(LONDON).date().isoformat()
    home = desk.get(f"{CLINIC}/desk/patients/{patient_id}")
    assert f'href="/clinic/book/service?patient={patient_id}"' in home.text

    check_url = choose_time(desk, site, patient_id, first, day)
    assert query_of(check_url)["patient"] == patient_id
    check = desk.get(f"{CLINIC}{check_url.removeprefix('/clinic')}")
    assert check.status_code == 200
    assert "For the patient: Bea Booked (1990-02-02)" in text(check)
    assert "Reason for the booking" in check.text
    hold = query_of(check_url)["hold"]

    no_reason = post(desk, "/book/check", query_of(check_url))
    assert no_reason.status_code == 400 and 'href="#comment"' in no_reason.text
    assert PatientClient(desk, patient_id).run(pages.appointment, hold).status == "pending"

    done = location(post(desk, "/book/check", {**query_of(check_url), "comment": "Phoned in"}))
    assert done == f"/clinic/appointments/{hold}?done=booked"
    confirmation = desk.get(f"{CLINIC}/appointments/{hold}?done=booked")
    assert "Appointment booked" in confirmation.text and "Phoned in" in confirmation.text
    booked = read(desk, "Appointment", hold)
    assert (booked["status"], booked["comment"]) == ("booked", "Phoned in")
    assert f"Patient/{patient_id}" in str(booked["participant"])

    move = {
        "service": site.service,
        "clinician": site.schedules["Okafor"],
        "reschedule": hold,
        "patient": patient_id,
        "day": day,
    }
    assert 'href="/clinic/book/day?' in confirmation.text
    to_check = location(post(desk, "/book/time", {**move, "slot": later}))
    moved = location(post(desk, "/book/check", {**query_of(to_check), "comment": "Clash at work"}))
    new_id = moved.split("/")[-1].split("?")[0]
    assert moved.endswith("?done=rescheduled") and new_id != hold
    new = desk.get(f"{BASE}/Appointment/{new_id}", headers=admin(desk)).json()
    old = desk.get(f"{BASE}/Appointment/{hold}", headers=admin(desk)).json()
    assert (new["status"], new["comment"], old["status"]) == (
        "booked",
        "Clash at work",
        "cancelled",
    )

    empty = post(desk, f"/appointments/{new_id}/cancel", {"reason": " "})
    assert empty.status_code == 400 and 'href="#reason"' in empty.text
    assert (
        desk.get(f"{BASE}/Appointment/{new_id}", headers=admin(desk)).json()["status"] == "booked"
    )
    cancelled = location(post(desk, f"/appointments/{new_id}/cancel", {"reason": "Feeling better"}))
    assert cancelled == f"/clinic/appointments/{new_id}?done=cancelled"
    gone = read(desk, "Appointment", new_id)
    assert (gone["status"], gone["cancelationReason"]["text"]) == ("cancelled", "Feeling better")
    assert sorted(communications(desk, patient_id)) == ["booked", "cancelled", "rescheduled"]


def test_a_time_taken_meanwhile_is_an_error_with_the_times_left(
    desk: TestClient, site: Clinic, chidi: str
) -> None:
    start = days_ahead(13, 9)
    taken = add_slot(desk, site.schedules["Okafor"], start)
    left = add_slot(desk, site.schedules["Okafor"], start + timedelta(minutes=30))
    other = PatientClient(desk, add_patient_login(desk, "desk-other", "Other"))
    other.run(pages.hold, taken)
    day = start.astimezone(LONDON).date().isoformat()
    form = {"service": site.service, "clinician": site.schedules["Okafor"], "day": day}
    refused = post(desk, "/book/time", {**form, "patient": chidi, "slot": taken})
    assert refused.status_code == 400
    assert "that time has just been taken" in text(refused)
    assert f'value="{left}"' in refused.text
    assert [
        a["id"] for a in search(desk, "Appointment", patient=f"Patient/{chidi}", date=f"ge{day}")
    ] == []


def test_a_new_time_taken_before_the_move_is_booked_offers_the_nearest_times(
    desk: TestClient, site: Clinic
) -> None:
    patient = PatientClient(
        desk, create(desk, {"resourceType": "Patient", "name": [{"family": "Mover"}]})
    )
    start = days_ahead(14, 9)
    booked = patient.run(
        pages.book_hold,
        patient.run(pages.hold, add_slot(desk, site.schedules["Okafor"], start))["id"],
    )
    wanted = add_slot(desk, site.schedules["Okafor"], start + timedelta(hours=1))
    nearest = add_slot(desk, site.schedules["Okafor"], start + timedelta(hours=2))
    day = start.astimezone(LONDON).date().isoformat()
    move = {"service": site.service, "clinician": site.schedules["Okafor"], "day": day}
    move |= {"reschedule": booked["id"], "patient": patient.patient}
    check_url = location(post(desk, "/book/time", {**move, "slot": wanted}))
    other = PatientClient(desk, add_patient_login(desk, "desk-taker", "Taker"))
    other.run(pages.hold, wanted)  # taken while the desk reads the check page
    refused = post(desk, "/book/check", {**query_of(check_url), "comment": "Asked by phone"})
    assert refused.status_code == 409
    assert title(refused).startswith("Error: ") and 'href="#alternatives"' in refused.text
    assert f'name="alternative" value="{nearest}"' in refused.text
    assert ">Asked by phone</textarea>" in refused.text  # the reason is kept
    assert read(desk, "Appointment", booked["id"])["status"] == "booked"  # the old time stays


# -- who may open the desk --------------------------------------------------------------


@pytest.mark.parametrize("username", ["desk-doc", "desk-pat"])
def test_a_practitioner_or_a_patient_gets_the_403_page(
    app: TestClient, site: Clinic, chidi: str, username: str
) -> None:
    app.cookies.clear()
    sign_in(app, username, "/clinic/", site=CLINIC)
    for path in (
        "/desk",
        "/desk/register",
        f"/desk/patients/{chidi}",
        "/desk/day",
        f"/book/service?patient={chidi}",
        "/appointments/anything",
    ):
        refused = app.get(f"{CLINIC}{path}")
        assert refused.status_code == 403, path
        assert "You cannot see this page" in refused.text
    home = app.get(f"{CLINIC}/")
    if home.status_code == 200:
        assert 'href="/clinic/desk"' not in home.text  # not in the menu either
        token = portal_csrf(home.text)
        sent = app.post(
            f"{CLINIC}/desk/register",
            data={"csrf": token, "given": "Not", "family": "Written", "birthdate": "2000-01-01"},
        )
        assert sent.status_code == 403
    assert search(app, "Patient", family="Written") == []


def test_a_booking_page_without_a_patient_is_not_found(desk: TestClient) -> None:
    assert desk.get(f"{CLINIC}/book/service").status_code == 404
    assert desk.get(f"{CLINIC}/book/service?patient=no-such-patient").status_code == 404


# -- the day list -----------------------------------------------------------------------


def test_the_day_list_has_one_table_per_clinician_made_to_print(
    desk: TestClient, site: Clinic
) -> None:
    start = days_ahead(15, 11)
    for family, surname in (("Okafor", "Early"), ("Shah", "Later")):
        patient_id = create(desk, {"resourceType": "Patient", "name": [{"family": surname}]})
        slot = add_slot(desk, site.schedules[family], start)
        PatientClient(desk, patient_id).run(pages.hold, slot)
    day = start.astimezone(LONDON).date().isoformat()
    listed = desk.get(f"{CLINIC}/desk/day", params={"day": day})
    assert listed.status_code == 200
    assert listed.text.count('<section class="day-list"') == 2
    assert listed.headers["X-Portal-Fhir-Calls"] == "2"  # not a call per row or clinician
    assert listed.text.count("<caption") == 2 and "Dr Okafor" in listed.text
    assert "Early" in listed.text and "Later" in listed.text
    assert f"{start.astimezone(LONDON):%H:%M}" in listed.text and "(Europe/London)" in listed.text
    assert " style=" not in listed.text and "<style" not in listed.text  # CSP: no inline style
    roles = re.findall(r'<option value="([^"]+)"', listed.text)
    one = desk.get(f"{CLINIC}/desk/day", params={"day": day, "clinician": roles[0]})
    assert one.text.count('<section class="day-list"') == 1
    css = desk.get(f"{CLINIC}/static/portal.css").text
    assert "@media print" in css and ".day-list + .day-list { break-before: page; }" in css
    bad = desk.get(f"{CLINIC}/desk/day", params={"day": "2026-02-31"})
    assert bad.status_code == 400 and 'href="#day"' in bad.text
