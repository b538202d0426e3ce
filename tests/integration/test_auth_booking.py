"""Booking with a patient token: own holds and bookings work, others' are refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, auth_app, bearer, mint, new_patient
from tests.integration.scheduling_setup import hours_from_now, make_clinic, make_slot

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for app_client in auth_app(settings_factory):
        app_client.headers["Authorization"] = f"Bearer {mint(app_client, 'system/*.cruds')}"
        yield app_client


def patient_headers(client: TestClient, patient_id: str) -> dict[str, str]:
    token = mint(client, "patient/*.cruds", patient=patient_id, fhir_user=f"Patient/{patient_id}")
    return bearer(token) | FHIR | {"X-Actor-Role": "frontdesk"}  # the role header is ignored


def proposal(slot: dict[str, Any], patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "proposed",
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "participant": [
            {"actor": {"reference": f"Patient/{patient_id}"}, "status": "needs-action"}
        ],
    }


def operation(client: TestClient, code: str, headers: dict[str, str], **value: Any) -> Any:
    body = {"resourceType": "Parameters", "parameter": [value]}
    return client.post(f"{BASE}/Appointment/${code}", json=body, headers=headers)


def test_patient_holds_and_books_only_their_own(client: TestClient) -> None:
    site = make_clinic(client)
    slot = make_slot(client, site["schedule"], hours_from_now(72))
    alice, bob = new_patient(client, "Alice"), new_patient(client, "Bob")
    as_alice, as_bob = patient_headers(client, alice), patient_headers(client, bob)

    for_bob = operation(
        client, "hold", as_alice, name="appt-resource", resource=proposal(slot, bob)
    )
    assert for_bob.status_code == 403
    held = operation(client, "hold", as_alice, name="appt-resource", resource=proposal(slot, alice))
    assert held.status_code == 200, held.text
    pending = held.json()["entry"][0]["resource"]
    reference = {"reference": f"Appointment/{pending['id']}"}

    hijack = operation(
        client, "book", as_bob, name="appointment-reference", valueReference=reference
    )
    assert hijack.status_code == 404
    booked = operation(
        client, "book", as_alice, name="appointment-reference", valueReference=reference
    )
    assert booked.status_code == 200, booked.text
    assert booked.json()["entry"][0]["resource"]["status"] == "booked"

    mine = client.get(f"{BASE}/Appointment", headers=as_alice).json()
    assert [e["resource"]["id"] for e in mine.get("entry", [])] == [pending["id"]]
    assert client.get(f"{BASE}/Appointment", headers=as_bob).json().get("entry", []) == []
    assert client.get(f"{BASE}/Appointment/{pending['id']}", headers=as_bob).status_code == 404


def test_check_in_by_role_words_from_the_token(client: TestClient) -> None:
    """The booking engine takes the token's role: the practitioner of the Schedule (through
    their PractitionerRole) and the front desk may check a patient in; another practitioner
    does not find the Appointment; the patient may not mark it."""
    site = make_clinic(client)
    slot = make_slot(client, site["schedule"], hours_from_now(48))
    alice = new_patient(client, "Alice")
    booked = client.post(
        f"{BASE}/Appointment", json={**proposal(slot, alice), "status": "booked"}, headers=FHIR
    )
    assert booked.status_code == 201, booked.text
    body = booked.json()
    other = client.post(
        f"{BASE}/Practitioner", json={"resourceType": "Practitioner"}, headers=FHIR
    ).json()

    def as_role(role: str, fhir_user: str | None) -> dict[str, str]:
        return bearer(mint(client, "user/*.cruds", fhir_user=fhir_user, role=role)) | FHIR

    url = f"{BASE}/Appointment/{body['id']}"
    mine = as_role("practitioner", f"Practitioner/{site['practitioner']}")
    theirs = as_role("practitioner", f"Practitioner/{other['id']}")
    desk = as_role("frontdesk", None)
    arrived = {**body, "status": "arrived"}
    assert client.put(url, json=arrived, headers=patient_headers(client, alice)).status_code == 422
    assert client.put(url, json=arrived, headers=theirs).status_code == 404
    checked_in = client.put(url, json={**body, "status": "checked-in"}, headers=mine)
    assert checked_in.status_code == 200, checked_in.text
    done = client.put(url, json={**checked_in.json(), "status": "arrived"}, headers=desk)
    assert done.status_code == 200, done.text


def test_another_patients_hold_cannot_be_booked_by_appt_id(client: TestClient) -> None:
    """Argonaut's appt-id is a uri: as a valueUri, a valueUrl or in the query string it names
    the hold as surely as IHE's valueReference, and the gate sees it the same way."""
    site = make_clinic(client)
    slot = make_slot(client, site["schedule"], hours_from_now(74))
    alice, bob = new_patient(client, "Alice"), new_patient(client, "Bob")
    as_alice, as_bob = patient_headers(client, alice), patient_headers(client, bob)
    held = operation(client, "hold", as_alice, name="appt-resource", resource=proposal(slot, alice))
    pending = held.json()["entry"][0]["resource"]
    for kind, value in (
        ("valueUri", f"Appointment/{pending['id']}"),
        ("valueUrl", f"{BASE}/Appointment/{pending['id']}"),
    ):
        hijack = operation(client, "book", as_bob, name="appt-id", **{kind: value})
        assert hijack.status_code == 404, (kind, hijack.text)
    by_query = client.post(
        f"{BASE}/Appointment/$book",
        params={"appt-id": f"Appointment/{pending['id']}"},
        json={"resourceType": "Parameters", "parameter": [{"name": "note", "valueString": "x"}]},
        headers=as_bob,
    )
    assert by_query.status_code == 404, by_query.text
    still = client.get(f"{BASE}/Appointment/{pending['id']}", headers=as_alice).json()
    assert still["status"] == "pending"
    mine = operation(
        client, "book", as_alice, name="appt-id", valueUri=f"Appointment/{pending['id']}"
    )
    assert mine.status_code == 200, mine.text


def test_a_write_only_patient_token_sees_what_it_booked(client: TestClient) -> None:
    """An operation that changes state echoes its own resources within the compartment,
    even to a token without a read scope (the gate judges them as the token's writes)."""
    site = make_clinic(client)
    slot = make_slot(client, site["schedule"], hours_from_now(96))
    alice = new_patient(client, "Alice")
    writer = bearer(mint(client, "patient/Appointment.c", patient=alice)) | FHIR
    booked = operation(client, "book", writer, name="appt-resource", resource=proposal(slot, alice))
    assert booked.status_code == 200, booked.text
    assert booked.json()["entry"][0]["resource"]["status"] == "booked"
