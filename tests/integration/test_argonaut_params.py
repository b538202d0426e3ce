"""`$hold` and `$book` with the Argonaut Scheduling and IHE ITI parameter names.

Argonaut names a stored Appointment by `appt-id` (a `valueUri`/`valueUrl`, or
a plain string in a form), IHE by `appointment-reference`; both name an
Appointment resource by `appt-resource` / `appointment-resource`. Both
operations change state, so (as the IGs say) they are POSTed; `$find` also
answers GET.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.scheduling import extensions as ext
from tests.conftest import BASE
from tests.integration.scheduling_setup import (
    HEADERS,
    appointment,
    diagnostics,
    hours_from_now,
    make_clinic,
    make_patient,
    make_slot,
)


def _parameters(*parameters: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parameters)}


def _held(client: TestClient, start_hours: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Slot and the pending Appointment that holds it."""
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(start_hours))
    proposal = appointment(make_patient(client), slot, status="proposed")
    held = client.post(
        "/fhir/Appointment/$hold",
        json=_parameters({"name": "appt-resource", "resource": proposal}),
        headers=HEADERS,
    )
    assert held.status_code == 200, held.text
    return slot, held.json()["entry"][0]["resource"]


def _book(client: TestClient, *parameters: dict[str, Any]) -> Any:
    return client.post("/fhir/Appointment/$book", json=_parameters(*parameters), headers=HEADERS)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("valueUri", "Appointment/{id}"),
        ("valueUrl", BASE + "/Appointment/{id}"),
        ("valueString", "{id}"),
    ],
)
def test_a_held_appointment_is_booked_by_appt_id(client: TestClient, kind: str, value: str) -> None:
    slot, pending = _held(client, 50 + len(kind))
    booked = _book(client, {"name": "appt-id", kind: value.format(id=pending["id"])})
    assert booked.status_code == 200, booked.text
    result = booked.json()["entry"][0]["resource"]
    assert result["id"] == pending["id"] and result["status"] == "booked"
    assert ext.first(result, ext.HOLD_EXPIRES) is None
    assert client.get(f"/fhir/Slot/{slot['id']}").json()["status"] == "busy"


def test_appt_id_of_a_booked_appointment_is_a_conflict(client: TestClient) -> None:
    _, pending = _held(client, 70)
    assert _book(client, {"name": "appt-id", "valueUri": f"Appointment/{pending['id']}"})
    again = _book(client, {"name": "appt-id", "valueUri": f"Appointment/{pending['id']}"})
    assert again.status_code == 409 and "not a pending hold" in diagnostics(again)
    wrong = _book(client, {"name": "appt-id", "valueUri": "Patient/123"})
    assert wrong.status_code == 400 and "appt-id" in diagnostics(wrong)


def test_hold_by_appt_id_of_a_stored_proposal(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(80))
    proposal = appointment(make_patient(client), slot, status="proposed")
    store = client.app.state.services.store  # type: ignore[attr-defined]
    assert client.portal is not None
    stored = client.portal.call(store.create, proposal)
    for name, kind in (("appt-id", "valueUri"), ("appointment-reference", "valueReference")):
        value: Any = f"Appointment/{stored.id}"
        if kind == "valueReference":
            value = {"reference": value}
        held = client.post(
            "/fhir/Appointment/$hold",
            json=_parameters({"name": name, kind: value}),
            headers=HEADERS,
        )
        if name == "appt-id":
            assert held.status_code == 200, held.text
            pending = held.json()["entry"][0]["resource"]
            assert pending["status"] == "pending" and pending["slot"] == proposal["slot"]
            assert client.get(f"/fhir/Slot/{slot['id']}").json()["status"] == "busy-tentative"
        else:  # the Slot is held now: the second hold of the same proposal is refused
            assert held.status_code == 409, held.text
    not_proposed = client.post(
        "/fhir/Appointment/$hold",
        json=_parameters({"name": "appt-id", "valueUri": f"Appointment/{pending['id']}"}),
        headers=HEADERS,
    )
    assert not_proposed.status_code == 409 and "not proposed" in diagnostics(not_proposed)


def test_reschedule_with_cancelled_appt_id_as_uri(client: TestClient) -> None:
    clinic = make_clinic(client)
    first = make_slot(client, clinic["schedule"], hours_from_now(90))
    second = make_slot(client, clinic["schedule"], hours_from_now(92))
    patient_id = make_patient(client)
    original = client.post(
        "/fhir/Appointment", json=appointment(patient_id, first), headers=HEADERS
    ).json()
    moved = _book(
        client,
        {"name": "appointment-resource", "resource": appointment(patient_id, second)},
        {"name": "cancelled-appt-id", "valueUri": f"{BASE}/Appointment/{original['id']}"},
    )
    assert moved.status_code == 200, moved.text
    assert client.get(f"/fhir/Appointment/{original['id']}").json()["status"] == "cancelled"
    assert client.get(f"/fhir/Slot/{first['id']}").json()["status"] == "free"


def test_hold_and_book_are_posted(client: TestClient) -> None:
    for operation in ("$hold", "$book"):
        got = client.get(f"/fhir/Appointment/{operation}", params={"appt-id": "Appointment/x"})
        assert got.status_code in (400, 405) and "POST" in diagnostics(got)
