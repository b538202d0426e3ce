"""The clinic workspace's schedule against the real app, store and Redis: day and week tables,
a practitioner limited to their own schedule, check-in and outcome written through the API
(with the visit's Encounter), and requests waiting for confirmation accepted or declined
with the patient notified (the Communication the engine writes)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.clinic_schedule_setup import (
    ZONE,
    Clinic,
    requested_visit,
    search,
    seed,
    stored,
    stored_visit,
)
from tests.integration.portal_support import CLINIC, portal_app, portal_csrf, sign_in


@pytest.fixture(scope="module")
def setup(settings_factory: Callable[..., Settings]) -> Iterator[tuple[TestClient, Clinic]]:
    for client in portal_app(settings_factory):
        yield client, seed(client, "sch")


@pytest.fixture
def client(setup: tuple[TestClient, Clinic]) -> TestClient:
    setup[0].cookies.clear()
    return setup[0]


@pytest.fixture
def clinic(setup: tuple[TestClient, Clinic]) -> Clinic:
    return setup[1]


def _hour(hours: float) -> datetime:
    """A quarter hour `hours` from now, in UTC."""
    moment = datetime.now(UTC) + timedelta(hours=hours)
    return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)


def _day(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(ZONE)).date().isoformat()


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(ZONE)):%H:%M}"


def _outcome(client: TestClient, page: str, visit: str, status: str, day: str) -> httpx.Response:
    """The row's button for `status` pressed on `page` (as shown, with the version it saw)."""
    seen = re.search(
        rf'action="/clinic/schedule/visits/{visit}">.*?name="version" value="(\d*)"', page, re.S
    )
    return client.post(
        f"{CLINIC}/schedule/visits/{visit}",
        data={
            "csrf": portal_csrf(page),
            "status": status,
            "version": seen.group(1) if seen else "",
            "day": day,
            "clinician": "",
        },
        follow_redirects=False,
    )


def test_a_practitioner_lands_on_their_own_day_as_a_table(
    client: TestClient, clinic: Clinic
) -> None:
    start = _hour(3)
    mine = stored_visit(client, clinic, "Okafor", start)
    other = stored_visit(client, clinic, "Shah", start)
    client.cookies.clear()
    sign_in(client, "sch-doc", "/clinic/", site=CLINIC)
    landing = client.get(f"{CLINIC}/", follow_redirects=False)
    assert landing.status_code == 303 and landing.headers["location"] == "/clinic/schedule"
    page = client.get(f"{CLINIC}/schedule", params={"day": _day(start)})
    assert page.status_code == 200
    html = page.text
    assert "<caption" in html and '<th scope="col">Time</th>' in html
    assert f'<th scope="row">{_clock(start)}</th>' in html
    assert '<th scope="col">Dr Okafor</th>' in html and "Dr Shah" not in html
    assert f'id="visit-{mine}"' in html and f'id="visit-{other}"' not in html
    assert "Jane Doe" in html and "GP appointment" in html and ">Booked</span>" in html
    assert f"Times are in {ZONE} time." in html
    assert page.headers["X-Portal-Fhir-Calls"] == "2"  # the directory, the day: not per row


def test_a_practitioner_cannot_open_a_colleagues_schedule(
    client: TestClient, clinic: Clinic
) -> None:
    sign_in(client, "sch-doc", "/clinic/", site=CLINIC)
    colleague = f"PractitionerRole/{clinic.roles['Shah']}"
    for path in ("/schedule", "/schedule/week"):
        refused = client.get(f"{CLINIC}{path}", params={"clinician": colleague})
        assert refused.status_code == 403
        assert "You can see only your own schedule" in refused.text
    unknown = client.get(f"{CLINIC}/schedule", params={"clinician": "PractitionerRole/nobody"})
    assert unknown.status_code == 404 and "Clinician not found" in unknown.text


def test_the_front_desk_sees_every_clinician_or_chooses_one(
    client: TestClient, clinic: Clinic
) -> None:
    start = _hour(4)
    stored_visit(client, clinic, "Shah", start)
    sign_in(client, "sch-desk", "/clinic/", site=CLINIC)
    every = client.get(f"{CLINIC}/schedule", params={"day": _day(start)}).text
    assert '<th scope="col">Dr Okafor</th>' in every and '<th scope="col">Dr Shah</th>' in every
    assert "All clinicians" in every
    shah = f"PractitionerRole/{clinic.roles['Shah']}"
    one = client.get(f"{CLINIC}/schedule", params={"day": _day(start), "clinician": shah}).text
    assert '<th scope="col">Dr Shah</th>' in one and '<th scope="col">Dr Okafor</th>' not in one


def test_the_week_has_a_column_per_day(client: TestClient, clinic: Clinic) -> None:
    start = _hour(5)
    stored_visit(client, clinic, "Okafor", start)
    sign_in(client, "sch-desk", "/clinic/", site=CLINIC)
    week = client.get(f"{CLINIC}/schedule/week", params={"day": _day(start)})
    assert week.status_code == 200
    headers = re.findall(r'<th scope="col">', week.text)
    assert len(headers) == 8  # the time, then Monday to Sunday
    assert f'<th scope="row">{_clock(start)}</th>' in week.text
    assert "Dr Okafor" in week.text  # all clinicians: each visit names its clinician
    assert week.headers["X-Portal-Fhir-Calls"] == "2"  # the directory, the week
    # The session's next pages reuse the directory a short while: the week's search alone.
    again = client.get(f"{CLINIC}/schedule/week", params={"day": _day(start)})
    assert again.headers["X-Portal-Fhir-Calls"] == "1"
    assert again.text.count('<th scope="col">') == 8 and "Dr Okafor" in again.text


def test_check_in_then_completed_writes_the_visit(client: TestClient, clinic: Clinic) -> None:
    start = _hour(2)
    visit = stored_visit(client, clinic, "Okafor", start)
    sign_in(client, "sch-doc", "/clinic/", site=CLINIC)
    day = client.get(f"{CLINIC}/schedule", params={"day": _day(start)}).text
    assert f'Arrived<span class="visually-hidden">: Jane Doe, {_clock(start)}' in day
    arrived = _outcome(client, day, visit, "arrived", _day(start))
    assert arrived.status_code == 303
    assert arrived.headers["location"].endswith(f"#visit-{visit}")
    assert stored(client, "Appointment", visit)["status"] == "arrived"
    encounters = search(client, "Encounter", {"appointment": f"Appointment/{visit}"})
    assert [e["status"] for e in encounters] == ["arrived"]
    after = client.get(f"{CLINIC}/schedule", params={"day": _day(start)}).text
    completed = _outcome(client, after, visit, "fulfilled", _day(start))
    assert completed.status_code == 303
    assert stored(client, "Appointment", visit)["status"] == "fulfilled"
    encounters = search(client, "Encounter", {"appointment": f"Appointment/{visit}"})
    assert [e["status"] for e in encounters] == ["finished"]


def test_no_show_is_refused_before_the_start_and_taken_after(
    client: TestClient, clinic: Clinic
) -> None:
    ahead, past = _hour(6), _hour(-3)
    later = stored_visit(client, clinic, "Okafor", ahead)
    missed = stored_visit(client, clinic, "Okafor", past)
    sign_in(client, "sch-doc", "/clinic/", site=CLINIC)
    day = client.get(f"{CLINIC}/schedule", params={"day": _day(ahead)}).text
    assert f'No-show<span class="visually-hidden">: Jane Doe, {_clock(ahead)}' not in day
    refused = _outcome(client, day, later, "noshow", _day(ahead))
    assert refused.status_code == 409
    assert "only after the appointment&#39;s start time" in refused.text
    assert stored(client, "Appointment", later)["status"] == "booked"
    old = client.get(f"{CLINIC}/schedule", params={"day": _day(past)}).text
    assert "Not recorded yet: still booked after its end" in old
    assert "still booked after its end: record whether" in old
    taken = _outcome(client, old, missed, "noshow", _day(past))
    assert taken.status_code == 303
    assert stored(client, "Appointment", missed)["status"] == "noshow"
    again = client.get(f"{CLINIC}/schedule", params={"day": _day(past)}).text
    assert ">No-show</span>" in again


def test_an_outcome_that_no_longer_applies_is_refused_and_changes_nothing(
    client: TestClient, clinic: Clinic
) -> None:
    start = _hour(7)
    visit = stored_visit(client, clinic, "Okafor", start)
    sign_in(client, "sch-desk", "/clinic/", site=CLINIC)
    day = client.get(f"{CLINIC}/schedule", params={"day": _day(start)}).text
    bad = _outcome(client, day, visit, "cancelled", _day(start))
    assert bad.status_code == 400 and "Choose what happened." in bad.text
    done = _outcome(client, day, visit, "fulfilled", _day(start))  # another desk was quicker
    assert done.status_code == 303
    stale = _outcome(client, day, visit, "arrived", _day(start))  # from the page shown before
    assert stale.status_code == 409 and "its status changed meanwhile" in stale.text
    assert stored(client, "Appointment", visit)["status"] == "fulfilled"
    other = stored_visit(client, clinic, "Shah", start)
    client.cookies.clear()
    sign_in(client, "sch-doc", "/clinic/", site=CLINIC)
    page = client.get(f"{CLINIC}/schedule", params={"day": _day(start)}).text
    hidden = _outcome(client, page, other, "arrived", _day(start))  # a colleague's patient
    assert hidden.status_code == 404
    assert stored(client, "Appointment", other)["status"] == "booked"


def _notified(client: TestClient, clinic: Clinic, visit: str) -> list[str]:
    """The events the patient was sent a message about, for one Appointment."""
    found = search(client, "Communication", {"recipient": f"Patient/{clinic.patient}"})
    return [
        c["category"][0]["coding"][0]["code"]
        for c in found
        if any(a["reference"].startswith(f"Appointment/{visit}/") for a in c.get("about", []))
    ]


def test_a_request_is_accepted_and_the_patient_told(client: TestClient, clinic: Clinic) -> None:
    visit = requested_visit(client, clinic, _hour(30))
    sign_in(client, "sch-doc", "/clinic/", site=CLINIC)
    listed = client.get(f"{CLINIC}/requests")
    assert listed.status_code == 200 and f'id="request-{visit}"' in listed.text
    assert "Waiting for confirmation" in listed.text
    accepted = client.post(
        f"{CLINIC}/requests/{visit}/accept",
        data={"csrf": portal_csrf(listed.text)},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    assert accepted.headers["location"] == "/clinic/requests?answered=accepted"
    assert stored(client, "Appointment", visit)["status"] == "booked"
    assert "confirmed" in _notified(client, clinic, visit)
    after = client.get(f"{CLINIC}/requests?answered=accepted").text
    assert f'id="request-{visit}"' not in after and "The request was accepted" in after
    again = client.post(f"{CLINIC}/requests/{visit}/accept", data={"csrf": portal_csrf(after)})
    assert again.status_code == 409 and "already answered" in again.text


def test_a_request_is_declined_only_with_a_reason(client: TestClient, clinic: Clinic) -> None:
    visit = requested_visit(client, clinic, _hour(32))
    sign_in(client, "sch-desk", "/clinic/", site=CLINIC)
    listed = client.get(f"{CLINIC}/requests").text
    empty = client.post(
        f"{CLINIC}/requests/{visit}/decline", data={"csrf": portal_csrf(listed), "reason": "  "}
    )
    assert empty.status_code == 400
    assert f'href="#reason-{visit}"' in empty.text and "<title>Error:" in empty.text
    assert stored(client, "Appointment", visit)["status"] == "pending"
    declined = client.post(
        f"{CLINIC}/requests/{visit}/decline",
        data={"csrf": portal_csrf(listed), "reason": "The doctor is away that day"},
        follow_redirects=False,
    )
    assert declined.status_code == 303
    body = stored(client, "Appointment", visit)
    assert body["status"] == "cancelled"
    assert body["cancelationReason"]["text"] == "The doctor is away that day"
    assert "declined" in _notified(client, clinic, visit)
