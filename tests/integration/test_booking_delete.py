"""Deleting through the booking engine: an Appointment gives back its Slot, a booked Slot stays."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_server.notifications.message import details_of
from tests.conftest import patient
from tests.integration.scheduling_setup import (
    HEADERS,
    STAFF,
    appointment,
    diagnostics,
    hours_from_now,
    make_clinic,
    make_patient,
    make_slot,
)


def _book(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/fhir/Appointment", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    booked: dict[str, Any] = response.json()
    return booked


def _slot_status(client: TestClient, slot_id: str) -> str:
    return str(client.get(f"/fhir/Slot/{slot_id}").json()["status"])


def test_deleting_a_booked_appointment_frees_its_slot_for_another_booking(
    client: TestClient,
) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(50))
    booked = _book(client, appointment(make_patient(client), slot))
    assert _slot_status(client, slot["id"]) == "busy"
    deleted = client.delete(f"/fhir/Appointment/{booked['id']}", headers=STAFF)
    assert deleted.status_code == 200, deleted.text
    assert client.get(f"/fhir/Appointment/{booked['id']}").status_code == 410
    assert _slot_status(client, slot["id"]) == "free"
    _book(client, appointment(make_patient(client, "Next"), slot))
    assert _slot_status(client, slot["id"]) == "busy"


def test_a_patient_cannot_delete_round_the_cancellation_cutoff(client: TestClient) -> None:
    clinic = make_clinic(client, cutoff_minutes=24 * 60)
    slot = make_slot(client, clinic["schedule"], hours_from_now(5))
    booked = _book(client, appointment(make_patient(client), slot))
    refused = client.delete(f"/fhir/Appointment/{booked['id']}", headers=HEADERS)
    assert refused.status_code == 422, refused.text
    assert "contact the clinic" in diagnostics(refused)
    assert client.get(f"/fhir/Appointment/{booked['id']}").json()["status"] == "booked"
    assert _slot_status(client, slot["id"]) == "busy"
    assert client.delete(f"/fhir/Appointment/{booked['id']}", headers=STAFF).status_code == 200
    assert _slot_status(client, slot["id"]) == "free"


def test_a_slot_with_a_booking_cannot_be_deleted(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(52))
    booked = _book(client, appointment(make_patient(client), slot))
    refused = client.delete(f"/fhir/Slot/{slot['id']}", headers=STAFF)
    assert refused.status_code == 409, refused.text
    assert "has bookings" in diagnostics(refused)
    assert _slot_status(client, slot["id"]) == "busy"
    cancel = {**booked, "status": "cancelled", "cancelationReason": {"text": "Patient asked"}}
    moved = client.put(f"/fhir/Appointment/{booked['id']}", json=cancel, headers=STAFF)
    assert moved.status_code == 200, moved.text
    assert client.delete(f"/fhir/Slot/{slot['id']}", headers=STAFF).status_code == 200
    free = make_slot(client, clinic["schedule"], hours_from_now(53))
    assert client.delete(f"/fhir/Slot/{free['id']}").status_code == 200


def _cancellations(client: TestClient, patient_id: str) -> list[dict[str, Any]]:
    found = client.get(f"/fhir/Communication?patient=Patient/{patient_id}&_count=50").json()
    return [
        details_of(e["resource"])
        for e in found.get("entry", [])
        if e["resource"]["category"][0]["coding"][0]["code"] == "cancelled"
    ]


def test_deleting_or_cancelling_announces_a_cancellation_naming_who(client: TestClient) -> None:
    clinic = make_clinic(client)
    first, second = (make_slot(client, clinic["schedule"], hours_from_now(h)) for h in (60, 61))
    email = [{"system": "email", "value": "m@example.org"}]
    emailed = {**patient(family="Mailed"), "telecom": email}
    pid = client.post("/fhir/Patient", json=emailed, headers=HEADERS).json()["id"]
    deleted = _book(client, appointment(pid, first))
    assert _cancellations(client, pid) == []
    assert client.delete(f"/fhir/Appointment/{deleted['id']}", headers=STAFF).status_code == 200
    [by_clinic] = _cancellations(client, pid)
    assert by_clinic["cancelledBy"] == "clinic"
    cancelled = _book(client, appointment(pid, second))
    body = {**cancelled, "status": "cancelled", "cancelationReason": {"text": "Cannot come"}}
    put = client.put(f"/fhir/Appointment/{cancelled['id']}", json=body, headers=HEADERS)
    assert put.status_code == 200, put.text
    assert sorted(d["cancelledBy"] for d in _cancellations(client, pid)) == ["clinic", "patient"]
