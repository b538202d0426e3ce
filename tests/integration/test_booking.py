"""Booking through plain FHIR writes on the embedded store: the rules and the state machine."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from fhir_server.scheduling import extensions as ext
from fhir_server.store import idempotency
from fhir_server.store.database import connect
from tests.integration.scheduling_setup import (
    HEADERS,
    STAFF,
    appointment,
    diagnostics,
    hours_from_now,
    instant,
    make_clinic,
    make_patient,
    make_slot,
)


def slot_status(client: TestClient, slot_id: str) -> str:
    return str(client.get(f"/fhir/Slot/{slot_id}").json()["status"])


def book(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/fhir/Appointment", json=body, headers={**HEADERS, **headers})


def test_booking_a_free_slot_claims_it_and_fills_in_the_appointment(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(30))
    pid = make_patient(client)
    response = book(client, appointment(pid, slot))
    assert response.status_code == 201, response.text
    booked = response.json()
    assert booked["status"] == "booked"
    assert booked["start"] == slot["start"] and booked["end"] == slot["end"]
    actors = {p["actor"]["reference"]: p["status"] for p in booked["participant"]}
    assert actors[f"PractitionerRole/{clinic['role']}"] == "accepted"
    assert actors[f"Location/{clinic['location']}"] == "accepted"
    assert slot_status(client, slot["id"]) == "busy"


def test_second_booking_of_a_slot_is_refused_409(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(31))
    assert book(client, appointment(make_patient(client), slot)).status_code == 201
    second = book(client, appointment(make_patient(client, "Roe"), slot))
    assert second.status_code == 409
    assert "already booked" in diagnostics(second)


def test_past_and_unavailable_slots_are_refused(client: TestClient) -> None:
    clinic = make_clinic(client)
    past = make_slot(client, clinic["schedule"], hours_from_now(-2))
    blocked = make_slot(client, clinic["schedule"], hours_from_now(33), status="busy-unavailable")
    pid = make_patient(client)
    response = book(client, appointment(pid, past))
    assert response.status_code == 409 and "already started" in diagnostics(response)
    response = book(client, appointment(pid, blocked))
    assert response.status_code == 409 and "not available" in diagnostics(response)
    assert slot_status(client, past["id"]) == "free"


def test_unknown_slot_is_422(client: TestClient) -> None:
    response = book(
        client,
        appointment(
            make_patient(client),
            {
                "id": "no-such-slot",
                "start": instant(hours_from_now(5)),
                "end": instant(hours_from_now(6)),
            },
        ),
    )
    assert response.status_code == 422 and "does not exist" in diagnostics(response)


def test_slot_of_another_schedule_is_refused(client: TestClient) -> None:
    ours, theirs = make_clinic(client), make_clinic(client)
    slot = make_slot(client, theirs["schedule"], hours_from_now(34))
    body = appointment(make_patient(client), slot)
    body["participant"].append(
        {"actor": {"reference": f"PractitionerRole/{ours['role']}"}, "status": "accepted"}
    )
    response = book(client, body)
    assert response.status_code == 422
    assert f"Schedule/{theirs['schedule']}" in diagnostics(response)
    assert slot_status(client, slot["id"]) == "free"


def test_times_that_do_not_match_the_slot_are_422(client: TestClient) -> None:
    clinic = make_clinic(client)
    start = hours_from_now(35)
    slot = make_slot(client, clinic["schedule"], start)
    body = appointment(
        make_patient(client),
        slot,
        start=instant(start + timedelta(minutes=5)),
        end=instant(start + timedelta(minutes=35)),
    )
    response = book(client, body)
    assert response.status_code == 422 and "Appointment.start" in diagnostics(response)
    assert slot_status(client, slot["id"]) == "free"


def test_minimum_notice_and_horizon(client: TestClient) -> None:
    clinic = make_clinic(client, notice_minutes=48 * 60, max_days=7)
    soon = make_slot(client, clinic["schedule"], hours_from_now(24))
    far = make_slot(client, clinic["schedule"], hours_from_now(24 * 9))
    fine = make_slot(client, clinic["schedule"], hours_from_now(72))
    pid = make_patient(client)
    response = book(client, appointment(pid, soon))
    assert response.status_code == 422 and "notice" in diagnostics(response)
    response = book(client, appointment(pid, far))
    assert response.status_code == 422 and "7 days ahead" in diagnostics(response)
    assert book(client, appointment(pid, fine)).status_code == 201


def test_patient_cannot_hold_two_overlapping_appointments(client: TestClient) -> None:
    first, second = make_clinic(client), make_clinic(client)
    start = hours_from_now(40)
    a = make_slot(client, first["schedule"], start)
    b = make_slot(client, second["schedule"], start + timedelta(minutes=15))
    pid = make_patient(client)
    assert book(client, appointment(pid, a)).status_code == 201
    response = book(client, appointment(pid, b))
    assert response.status_code == 409 and "overlaps" in diagnostics(response)
    assert slot_status(client, b["id"]) == "free"
    other = book(client, appointment(make_patient(client, "Other"), b))
    assert other.status_code == 201


def test_provider_confirmation_accept_and_decline(client: TestClient) -> None:
    clinic = make_clinic(client, confirm=True)
    role_ref = f"PractitionerRole/{clinic['role']}"
    slots = [make_slot(client, clinic["schedule"], hours_from_now(h)) for h in (50, 52)]
    pid = make_patient(client)
    pending = book(client, appointment(pid, slots[0])).json()
    assert pending["status"] == "pending"
    assert {p["actor"]["reference"]: p["status"] for p in pending["participant"]}[
        role_ref
    ] == "needs-action"
    assert slot_status(client, slots[0]["id"]) == "busy"
    patient_says_booked = client.patch(
        f"/fhir/Appointment/{pending['id']}",
        json=[{"op": "replace", "path": "/status", "value": "booked"}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert patient_says_booked.status_code == 409
    assert "confirmation" in diagnostics(patient_says_booked)
    accept = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{pending['id']}"},
        "actor": {"reference": role_ref},
        "participantStatus": "accepted",
    }
    assert client.post("/fhir/AppointmentResponse", json=accept, headers=HEADERS).status_code == 201
    assert client.get(f"/fhir/Appointment/{pending['id']}").json()["status"] == "booked"

    other = book(client, appointment(pid, slots[1])).json()
    decline = {**accept, "appointment": {"reference": f"Appointment/{other['id']}"}}
    decline["participantStatus"] = "declined"
    assert (
        client.post("/fhir/AppointmentResponse", json=decline, headers=HEADERS).status_code == 201
    )
    declined = client.get(f"/fhir/Appointment/{other['id']}").json()
    assert declined["status"] == "cancelled"
    assert slot_status(client, slots[1]["id"]) == "free"


def test_response_from_a_non_participant_is_422(client: TestClient) -> None:
    clinic = make_clinic(client, confirm=True)
    slot = make_slot(client, clinic["schedule"], hours_from_now(54))
    pending = book(client, appointment(make_patient(client), slot)).json()
    stranger = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{pending['id']}"},
        "actor": {"reference": "Practitioner/someone-else"},
        "participantStatus": "accepted",
    }
    response = client.post("/fhir/AppointmentResponse", json=stranger, headers=HEADERS)
    assert response.status_code == 422 and "not a participant" in diagnostics(response)
    assert client.get(f"/fhir/Appointment/{pending['id']}").json()["status"] == "pending"


def _cancel(client: TestClient, appointment_id: str, **headers: str) -> Any:
    current = client.get(f"/fhir/Appointment/{appointment_id}").json()
    current.pop("meta", None)
    current["status"] = "cancelled"
    current["cancelationReason"] = {"text": "Cannot come"}
    return client.put(
        f"/fhir/Appointment/{appointment_id}", json=current, headers={**HEADERS, **headers}
    )


def test_cancel_frees_the_slot_and_honours_the_patient_cutoff(client: TestClient) -> None:
    clinic = make_clinic(client, cutoff_minutes=48 * 60)
    near = make_slot(client, clinic["schedule"], hours_from_now(24))
    later = make_slot(client, clinic["schedule"], hours_from_now(80))
    pid = make_patient(client)
    near_appt = book(client, appointment(pid, near)).json()
    later_appt = book(client, appointment(pid, later)).json()

    refused = _cancel(client, near_appt["id"])
    assert refused.status_code == 422 and "48 hours" in diagnostics(refused)
    assert slot_status(client, near["id"]) == "busy"
    by_staff = _cancel(client, near_appt["id"], **{"x-actor-role": "frontdesk"})
    assert by_staff.status_code == 200, by_staff.text
    assert slot_status(client, near["id"]) == "free"

    assert _cancel(client, later_appt["id"]).status_code == 200
    assert slot_status(client, later["id"]) == "free"
    again = book(client, appointment(make_patient(client, "Next"), later))
    assert again.status_code == 201


def test_cancel_needs_a_reason(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(60))
    booked = book(client, appointment(make_patient(client), slot)).json()
    response = client.patch(
        f"/fhir/Appointment/{booked['id']}",
        json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert response.status_code == 422 and "cancelationReason" in diagnostics(response)
    assert slot_status(client, slot["id"]) == "busy"


def test_reschedule_in_place_moves_atomically(client: TestClient) -> None:
    clinic = make_clinic(client)
    old, new, taken = (
        make_slot(client, clinic["schedule"], hours_from_now(h)) for h in (70, 72, 74)
    )
    pid = make_patient(client)
    booked = book(client, appointment(pid, old)).json()
    assert book(client, appointment(make_patient(client, "X"), taken)).status_code == 201

    move_to_taken = client.patch(
        f"/fhir/Appointment/{booked['id']}",
        json=[{"op": "replace", "path": "/slot", "value": [{"reference": f"Slot/{taken['id']}"}]}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert move_to_taken.status_code == 409
    unchanged = client.get(f"/fhir/Appointment/{booked['id']}")
    assert unchanged.json()["meta"]["versionId"] == booked["meta"]["versionId"]
    assert slot_status(client, old["id"]) == "busy"

    moved = client.patch(
        f"/fhir/Appointment/{booked['id']}",
        json=[{"op": "replace", "path": "/slot", "value": [{"reference": f"Slot/{new['id']}"}]}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == new["start"]
    assert slot_status(client, new["id"]) == "busy"
    assert slot_status(client, old["id"]) == "free"


def _set_status(client: TestClient, appointment_id: str, status: str, **headers: str) -> Any:
    return client.patch(
        f"/fhir/Appointment/{appointment_id}",
        json=[{"op": "replace", "path": "/status", "value": status}],
        headers={"content-type": "application/json-patch+json", **headers},
    )


def test_arrived_fulfilled_and_illegal_transitions(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(90))
    booked = book(client, appointment(make_patient(client), slot)).json()
    staff = {"x-actor-role": "frontdesk"}
    by_patient = _set_status(client, booked["id"], "arrived")
    assert by_patient.status_code == 422 and "front desk" in diagnostics(by_patient)
    early_noshow = _set_status(client, booked["id"], "noshow", **staff)
    assert early_noshow.status_code == 409 and "before it starts" in diagnostics(early_noshow)
    assert _set_status(client, booked["id"], "arrived", **staff).status_code == 200
    assert _set_status(client, booked["id"], "fulfilled", **staff).status_code == 200
    response = _cancel(client, booked["id"], **staff)
    assert response.status_code == 409
    assert "fulfilled cannot become cancelled" in diagnostics(response)
    assert slot_status(client, slot["id"]) == "busy"


def test_idempotency_key_returns_the_first_result(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(100))
    body = appointment(make_patient(client), slot)
    first = book(client, body, **{"idempotency-key": "retry-me-1"})
    second = book(client, body, **{"idempotency-key": "retry-me-1"})
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    third = book(client, body, **{"idempotency-key": "another-key"})
    assert third.status_code == 409


def test_failed_booking_releases_its_idempotency_key(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(102))
    bad = appointment(make_patient(client), slot, start="2001-01-01T00:00:00Z")
    assert book(client, bad, **{"idempotency-key": "k-fail"}).status_code == 422
    good = appointment(make_patient(client, "Good"), slot)
    assert book(client, good, **{"idempotency-key": "k-fail"}).status_code == 201


def test_appointment_without_slots_is_stored_plainly(client: TestClient) -> None:
    body = {
        "resourceType": "Appointment",
        "status": "proposed",
        "participant": [{"actor": {"reference": "Patient/x"}, "status": "needs-action"}],
    }
    response = client.post("/fhir/Appointment", json=body, headers=STAFF)
    assert response.status_code == 201
    assert response.json()["status"] == "proposed"


def test_group_slot_takes_capacity_bookings(client: TestClient) -> None:
    clinic = make_clinic(client, capacity=2)
    slot = make_slot(client, clinic["schedule"], hours_from_now(110))
    slot = client.put(
        f"/fhir/Slot/{slot['id']}",
        json={
            **{k: v for k, v in slot.items() if k != "meta"},
            "extension": [{"url": ext.CAPACITY, "valuePositiveInt": 2}],
        },
        headers=HEADERS,
    ).json()
    first = book(client, appointment(make_patient(client, "A"), slot))
    assert first.status_code == 201 and slot_status(client, slot["id"]) == "free"
    assert book(client, appointment(make_patient(client, "B"), slot)).status_code == 201
    assert slot_status(client, slot["id"]) == "busy"
    third = book(client, appointment(make_patient(client, "C"), slot))
    assert third.status_code == 409
    assert _cancel(client, first.json()["id"]).status_code == 200
    assert slot_status(client, slot["id"]) == "free"
    assert book(client, appointment(make_patient(client, "D"), slot)).status_code == 201


def test_appointment_type_not_offered_is_422(client: TestClient) -> None:
    clinic = make_clinic(client)
    schedule = client.get(f"/fhir/Schedule/{clinic['schedule']}").json()
    schedule.pop("meta")
    schedule["extension"].append(
        {
            "url": ext.APPOINTMENT_TYPE,
            "valueCodeableConcept": {"coding": [{"system": "urn:t", "code": "CHECKUP"}]},
        }
    )
    assert (
        client.put(f"/fhir/Schedule/{schedule['id']}", json=schedule, headers=HEADERS).status_code
        == 200
    )
    slot = make_slot(client, clinic["schedule"], hours_from_now(112))
    other = {"coding": [{"system": "urn:t", "code": "SURGERY"}]}
    refused = book(client, appointment(make_patient(client), slot, appointmentType=other))
    assert refused.status_code == 422 and "appointment type" in diagnostics(refused)
    offered = {"coding": [{"system": "urn:t", "code": "CHECKUP"}]}
    assert (
        book(client, appointment(make_patient(client), slot, appointmentType=offered)).status_code
        == 201
    )


def test_booking_in_a_failed_transaction_leaves_the_slot_free(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(114))
    pid = make_patient(client)

    def transaction(second: dict[str, Any]) -> Any:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:7f1c4b1e-0000-4000-8000-000000000001",
                    "resource": appointment(pid, slot),
                    "request": {"method": "POST", "url": "Appointment"},
                },
                second,
            ],
        }
        return client.post("/fhir", json=bundle, headers=HEADERS)

    bad = {
        "resource": {"resourceType": "Patient", "gender": "not-a-gender"},
        "request": {"method": "POST", "url": "Patient"},
    }
    assert transaction(bad).status_code >= 400
    assert slot_status(client, slot["id"]) == "free"
    good = {
        "resource": {"resourceType": "Patient"},
        "request": {"method": "POST", "url": "Patient"},
    }
    done = transaction(good)
    assert done.status_code == 200, done.text
    assert slot_status(client, slot["id"]) == "busy"


def test_a_booked_slot_cannot_be_freed_by_editing_it(client: TestClient) -> None:
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(116))
    assert book(client, appointment(make_patient(client), slot)).status_code == 201
    current = client.get(f"/fhir/Slot/{slot['id']}").json()
    current.pop("meta")
    response = client.put(
        f"/fhir/Slot/{slot['id']}", json={**current, "status": "free"}, headers=STAFF
    )
    assert response.status_code == 409 and "has bookings" in diagnostics(response)
    assert slot_status(client, slot["id"]) == "busy"
    comment = client.put(
        f"/fhir/Slot/{slot['id']}", json={**current, "comment": "Room 4"}, headers=STAFF
    )
    assert comment.status_code == 200


def test_provider_accepts_by_patching_its_participant_status(client: TestClient) -> None:
    clinic = make_clinic(client, confirm=True)
    slot = make_slot(client, clinic["schedule"], hours_from_now(118))
    pending = book(client, appointment(make_patient(client), slot)).json()
    index = next(
        n
        for n, p in enumerate(pending["participant"])
        if p["actor"]["reference"] == f"PractitionerRole/{clinic['role']}"
    )
    accepted = client.patch(
        f"/fhir/Appointment/{pending['id']}",
        json=[{"op": "replace", "path": f"/participant/{index}/status", "value": "accepted"}],
        headers={"content-type": "application/json-patch+json", "x-actor-role": "practitioner"},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "booked"
    assert slot_status(client, slot["id"]) == "busy"


def test_idempotency_key_reused_for_another_request_is_422(client: TestClient) -> None:
    clinic = make_clinic(client)
    first_slot = make_slot(client, clinic["schedule"], hours_from_now(120))
    other_slot = make_slot(client, clinic["schedule"], hours_from_now(122))
    pid = make_patient(client)
    key = {"idempotency-key": "reused-key"}
    assert book(client, appointment(pid, first_slot), **key).status_code == 201
    reused = book(client, appointment(pid, other_slot), **key)
    assert reused.status_code == 422 and "different request" in diagnostics(reused)
    assert slot_status(client, other_slot["id"]) == "free"


def test_idempotency_claim_left_by_a_dead_process_is_taken_over(client: TestClient) -> None:
    settings = client.app.state.services.settings  # type: ignore[attr-defined]

    async def leave_stale_claim() -> None:
        database = await connect(str(settings.mongodb_uri), settings.database)
        try:
            await database.db[idempotency.COLLECTION].insert_one(
                {
                    "_id": "booking:crashed-key",
                    "created": "2001-01-01T00:00:00.000000Z",
                    "done": False,
                    "fingerprint": "whatever",
                }
            )
        finally:
            await database.close()

    asyncio.run(leave_stale_claim())
    clinic = make_clinic(client)
    slot = make_slot(client, clinic["schedule"], hours_from_now(124))
    response = book(
        client, appointment(make_patient(client), slot), **{"idempotency-key": "crashed-key"}
    )
    assert response.status_code == 201, response.text


def test_the_patients_time_is_given_back_by_cancel_and_move(client: TestClient) -> None:
    first, second = make_clinic(client), make_clinic(client)
    start = hours_from_now(130)
    pid = make_patient(client)
    kept = book(client, appointment(pid, make_slot(client, first["schedule"], start)))
    assert kept.status_code == 201
    clash = make_slot(client, second["schedule"], start + timedelta(minutes=10))
    assert book(client, appointment(pid, clash)).status_code == 409

    assert _cancel(client, kept.json()["id"], **{"x-actor-role": "frontdesk"}).status_code == 200
    rebooked = book(client, appointment(pid, clash))
    assert rebooked.status_code == 201, rebooked.text

    # Moving onto a Slot that overlaps its own current time is no clash with itself.
    later = make_slot(client, second["schedule"], start + timedelta(minutes=25))
    moved = client.patch(
        f"/fhir/Appointment/{rebooked.json()['id']}",
        json=[{"op": "replace", "path": "/slot", "value": [{"reference": f"Slot/{later['id']}"}]}],
        headers={"content-type": "application/json-patch+json"},
    )
    assert moved.status_code == 200, moved.text
    before = make_slot(client, first["schedule"], start + timedelta(minutes=-5))
    assert book(client, appointment(pid, before)).status_code == 201  # the old time is free
    overlapping_new = make_slot(client, first["schedule"], start + timedelta(minutes=50))
    response = book(client, appointment(pid, overlapping_new))
    assert response.status_code == 409 and "overlaps" in diagnostics(response)
