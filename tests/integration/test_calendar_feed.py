"""Private calendar feeds: issued to their owner by `$calendar-feed`, read by calendar apps.

The feed is fetched the way a calendar app fetches it (no token, the URL
alone) and parsed with `icalendar`; a booking and a cancellation show on the
next fetch, a new URL revokes the old one, nobody gets another user's feed,
and a practitioner's feed names no patient by default. Disabling the owner's
account (the admin's `$change-user`, the operator's `users disable`) closes
the feed for good, and a feed whose owner's accounts are all disabled is not
served whatever happened to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from typer.testing import CliRunner

from fhir_server.auth.cli import users_app
from fhir_server.publishing.cli import calendar_feed_app
from fhir_server.scheduling import extensions as ext
from fhir_server.settings import Settings
from fhir_server.store.clock import parse_instant
from tests.integration.auth_helpers import (
    BASE,
    add_user,
    audit_events,
    auth_app,
    bearer,
    call,
    components,
    mint,
)
from tests.integration.scheduling_setup import hours_from_now, make_slot, post

ZONE = "Europe/Paris"
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for app_client in auth_app(settings_factory):
        app_client.headers["Authorization"] = f"Bearer {mint(app_client, 'system/*.cruds')}"
        yield app_client


@pytest.fixture(scope="module")
def clinic(client: TestClient) -> dict[str, str]:
    location = post(
        client,
        {
            "resourceType": "Location",
            "name": "Riverside",
            "extension": [{"url": ext.TIMEZONE, "valueCode": ZONE}],
        },
    )
    doctors = [
        post(client, {"resourceType": "Practitioner", "name": [{"family": f}]}) for f in "AB"
    ]
    role = post(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{doctors[0]['id']}"},
        },
    )
    schedule = post(
        client,
        {
            "resourceType": "Schedule",
            "active": True,
            "actor": [
                {"reference": f"PractitionerRole/{role['id']}"},
                {"reference": f"Location/{location['id']}"},
            ],
        },
    )
    alice, bob = (
        post(client, {"resourceType": "Patient", "name": [{"family": f, "given": ["Zq"]}]})
        for f in ("Zqalice", "Zqbob")
    )
    return {
        "location": location["id"],
        "doctor": doctors[0]["id"],
        "other_doctor": doctors[1]["id"],
        "role": role["id"],
        "schedule": schedule["id"],
        "alice": alice["id"],
        "bob": bob["id"],
    }


def as_patient(client: TestClient, patient: str) -> dict[str, str]:
    token = mint(client, "patient/*.cruds", patient=patient, fhir_user=f"Patient/{patient}")
    return bearer(token) | FHIR


def as_doctor(client: TestClient, practitioner: str) -> dict[str, str]:
    return bearer(mint(client, "user/*.cruds", fhir_user=f"Practitioner/{practitioner}")) | FHIR


def feed_url(client: TestClient, owner: str, headers: dict[str, str], **revoke: bool) -> Any:
    parameters = [{"name": "revoke", "valueBoolean": True}] if revoke else []
    body = {"resourceType": "Parameters", "parameter": parameters} if parameters else None
    return client.post(f"{BASE}/{owner}/$calendar-feed", json=body, headers=headers)


def issued(client: TestClient, owner: str, headers: dict[str, str]) -> str:
    answer = feed_url(client, owner, headers)
    assert answer.status_code == 200, answer.text
    values = {
        p["name"]: next(v for k, v in p.items() if k != "name") for p in answer.json()["parameter"]
    }
    url = values["url"]
    assert values["webcal"] == "webcal://" + url.split("://", 1)[1]
    assert urlsplit(url).path.startswith("/calendar/") and url.endswith(".ics")
    return str(url)


def fetch(client: TestClient, url: str, **headers: str) -> Any:
    """The feed as a calendar app gets it: the URL alone, no token."""
    token = client.headers.pop("Authorization")
    try:
        return client.get(urlsplit(url).path, headers=headers)
    finally:
        client.headers["Authorization"] = token


def events(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    assert calendar["VERSION"] == "2.0" and calendar.get("PRODID")
    return list(calendar.walk("VEVENT"))


def book(client: TestClient, clinic: dict[str, str], patient: str, hours: int) -> dict[str, Any]:
    slot = make_slot(client, clinic["schedule"], hours_from_now(hours))
    proposal = {
        "resourceType": "Appointment",
        "status": "proposed",
        "appointmentType": {"text": "Follow-up"},
        "description": "zq-clinical-note",
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "participant": [
            {
                "actor": {"reference": f"Patient/{patient}", "display": f"{patient}-Zqname"},
                "status": "accepted",
            },
            {
                "actor": {"reference": f"PractitionerRole/{clinic['role']}", "display": "Dr A"},
                "status": "accepted",
            },
            {
                "actor": {"reference": f"Location/{clinic['location']}", "display": "Riverside"},
                "status": "accepted",
            },
        ],
    }
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "appt-resource", "resource": proposal}],
    }
    answer = client.post(f"{BASE}/Appointment/$book", json=body)
    assert answer.status_code == 200, answer.text
    booked: dict[str, Any] = answer.json()["entry"][0]["resource"]
    return booked


def test_a_practitioner_s_feed_follows_bookings_and_cancellations(
    client: TestClient, clinic: dict[str, str]
) -> None:
    doctor = f"Practitioner/{clinic['doctor']}"
    url = issued(client, doctor, as_doctor(client, clinic["doctor"]))
    assert events(fetch(client, url)) == []

    appointment = book(client, clinic, clinic["alice"], 50)
    first = fetch(client, url)
    [event] = events(first)
    assert str(event["UID"]) == f"{appointment['id']}@clinic-booking"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == "Follow-up"  # no patient name, no clinical note
    assert str(event["LOCATION"]) == "Riverside"
    start = event.decoded("DTSTART")
    assert start.tzinfo == ZoneInfo(ZONE) and event["DTSTART"].params["TZID"] == ZONE
    assert start.astimezone(UTC) == parse_instant(appointment["start"])
    text = first.text
    assert "BEGIN:VTIMEZONE" in text and f"TZID:{ZONE}" in text
    assert "Zqname" not in text and "zq-clinical-note" not in text
    etag = first.headers["etag"]
    assert first.headers["last-modified"]
    assert fetch(client, url, **{"If-None-Match": etag}).status_code == 304

    cancelled = {**appointment, "status": "cancelled", "cancelationReason": {"text": "Away"}}
    changed = client.put(f"{BASE}/Appointment/{appointment['id']}", json=cancelled, headers=FHIR)
    assert changed.status_code == 200, changed.text
    after = fetch(client, url, **{"If-None-Match": etag})
    [event] = events(after)
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) > 0 and after.headers["etag"] != etag


def test_a_patient_s_feed_holds_only_their_own_appointments(
    client: TestClient, clinic: dict[str, str]
) -> None:
    alice = clinic["alice"]
    url = issued(client, f"Patient/{alice}", as_patient(client, alice))
    mine = book(client, clinic, alice, 74)
    theirs = book(client, clinic, clinic["bob"], 98)
    found = events(fetch(client, url))
    uids = {str(e["UID"]) for e in found}
    assert f"{mine['id']}@clinic-booking" in uids
    assert f"{theirs['id']}@clinic-booking" not in uids
    assert any(str(e["SUMMARY"]) == "Follow-up with Dr A" for e in found)


def test_a_new_url_revokes_the_old_one_and_revoke_closes_the_feed(
    client: TestClient, clinic: dict[str, str]
) -> None:
    bob = clinic["bob"]
    headers = as_patient(client, bob)
    old = issued(client, f"Patient/{bob}", headers)
    new = issued(client, f"Patient/{bob}", headers)
    assert old != new
    assert fetch(client, old).status_code == 404
    assert fetch(client, new).status_code == 200
    closed = feed_url(client, f"Patient/{bob}", headers, revoke=True)
    assert closed.status_code == 200 and "parameter" not in closed.json()
    assert fetch(client, new).status_code == 404
    assert fetch(client, f"{BASE}/../calendar/not-a-token.ics").status_code == 404


def test_nobody_gets_another_user_s_feed(client: TestClient, clinic: dict[str, str]) -> None:
    alice, bob = clinic["alice"], clinic["bob"]
    assert feed_url(client, f"Patient/{bob}", as_patient(client, alice)).status_code == 404
    other = f"Practitioner/{clinic['other_doctor']}"
    assert feed_url(client, other, as_doctor(client, clinic["doctor"])).status_code in (403, 404)
    staff = bearer(mint(client, "user/*.cruds", role="frontdesk")) | FHIR
    assert feed_url(client, f"Patient/{alice}", staff).status_code == 403
    # A clinic-wide backend token may change any Patient, but only owners get feed URLs.
    assert feed_url(client, f"Patient/{alice}", {}).status_code == 403
    assert client.get(f"{BASE}/Patient/{alice}/$calendar-feed").status_code == 400
    statement = client.get(f"{BASE}/metadata").json()["rest"][0]["resource"]
    offered = {
        r["type"]
        for r in statement
        if any(o["name"] == "calendar-feed" for o in r.get("operation", []))
    }
    assert offered == {"Patient", "Practitioner"}


def operator_env(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the operator's commands at the app's own database and address."""
    settings: Settings = client.app.state.services.settings  # type: ignore[attr-defined]
    monkeypatch.setenv("FHIR_MONGODB_URI", str(settings.mongodb_uri))
    monkeypatch.setenv("FHIR_DATABASE", settings.database)
    monkeypatch.setenv("FHIR_PUBLIC_BASE_URL", settings.base_url)


def test_the_operator_command_issues_and_revokes(
    client: TestClient, clinic: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    operator_env(client, monkeypatch)
    doctor = f"Practitioner/{clinic['doctor']}"
    result = CliRunner().invoke(calendar_feed_app, ["issue", doctor])
    assert result.exit_code == 0, result.output
    url, webcal = result.output.split()
    assert webcal.startswith("webcal://") and fetch(client, url).status_code == 200
    revoked = CliRunner().invoke(calendar_feed_app, ["revoke", doctor])
    assert revoked.exit_code == 0 and fetch(client, url).status_code == 404
    unknown = CliRunner().invoke(calendar_feed_app, ["issue", "Practitioner/nobody"])
    assert unknown.exit_code == 1 and "not known" in unknown.output


def admin_changes(client: TestClient, username: str, disabled: bool) -> None:
    """The admin console's change of an account, through `$change-user`."""
    token = mint(client, "openid fhirUser user/*.cruds", role="admin")
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "username", "valueString": username},
            {"name": "disabled", "valueBoolean": disabled},
        ],
    }
    answer = client.post(f"{BASE}/$change-user", json=body, headers=bearer(token) | FHIR)
    assert answer.status_code == 200, answer.text


def new_owner(client: TestClient, resource_type: str, username: str | None) -> str:
    """A new Patient or Practitioner (`Type/id`), with an account of its own when named."""
    created = post(client, {"resourceType": resource_type, "name": [{"family": "Zqowner"}]})
    owner = f"{resource_type}/{created['id']}"
    if username:
        add_user(client, username, resource_type.lower(), owner)
    return owner


def test_disabling_an_account_closes_its_feed_and_enabling_does_not_reopen_it(
    client: TestClient,
) -> None:
    owner = new_owner(client, "Patient", "zqcarol")
    headers = as_patient(client, owner.split("/")[1])
    url = issued(client, owner, headers)
    assert fetch(client, url).status_code == 200

    admin_changes(client, "zqcarol", disabled=True)
    assert fetch(client, url).status_code == 404
    admin_changes(client, "zqcarol", disabled=False)
    assert fetch(client, url).status_code == 404  # a leaked URL stays dead
    assert fetch(client, issued(client, owner, headers)).status_code == 200  # a new one works

    changes = [
        e.get("outcomeDesc")
        for e in audit_events(client)
        if any(s["code"] == "user-changed" for s in e.get("subtype", []))
        and e["entity"][0]["what"]["identifier"]["value"] == "zqcarol"
    ]
    assert sorted(changes) == ["disabled false", "disabled true, calendar feed closed"]


def test_the_operator_s_disable_closes_the_feed_too(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = new_owner(client, "Practitioner", "zqdoctor")
    url = issued(client, owner, as_doctor(client, owner.split("/")[1]))
    assert fetch(client, url).status_code == 200

    operator_env(client, monkeypatch)
    result = CliRunner().invoke(users_app, ["disable", "zqdoctor"])
    assert result.exit_code == 0, result.output
    assert fetch(client, url).status_code == 404
    admin_changes(client, "zqdoctor", disabled=False)
    assert fetch(client, url).status_code == 404


def test_a_feed_is_not_served_while_all_its_owner_s_accounts_are_disabled(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator_env(client, monkeypatch)

    def operator_issues(owner: str) -> str:
        result = CliRunner().invoke(calendar_feed_app, ["issue", owner])
        assert result.exit_code == 0, result.output
        return result.output.split()[0]

    # No account at all: the operator's feed works, as before.
    no_account = operator_issues(new_owner(client, "Patient", None))
    assert fetch(client, no_account).status_code == 200
    # An account disabled behind the domain's back (or a step cut short): still refused.
    owner = new_owner(client, "Patient", "zqdave")
    url = operator_issues(owner)
    assert fetch(client, url).status_code == 200
    add_user(client, "zqdave-too", "patient", owner)
    update = components(client).store.update_user
    call(client, update, "zqdave", {"disabled": True})
    assert fetch(client, url).status_code == 200  # another account of the owner still signs in
    call(client, update, "zqdave-too", {"disabled": True})
    assert fetch(client, url).status_code == 404
    call(client, update, "zqdave", {"disabled": False})
    assert fetch(client, url).status_code == 200
    assert fetch(client, no_account).status_code == 200
