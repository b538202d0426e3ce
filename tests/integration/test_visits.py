"""Visits and charges: check-in, outcome and corrections of an Appointment, through the
real API, leave an Encounter and ChargeItems that EHRs and billing systems search."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fhir_server.visits import billing
from fhir_server.visits.records import encounter_id
from tests.integration.scheduling_setup import (
    HEADERS,
    STAFF,
    appointment,
    hours_from_now,
    make_clinic,
    make_patient,
    make_slot,
    post,
)

CPT = "http://www.ama-assn.org/go/cpt"
VISIT_CODE = {"coding": [{"system": CPT, "code": "99213", "display": "Office visit"}]}
NO_SHOW_CODE = {"coding": [{"system": "http://clinic.example/fees", "code": "no-show"}]}
PATCH = {"content-type": "application/json-patch+json", "x-actor-role": "frontdesk"}


def billed_clinic(
    client: TestClient, *, visit: bool = True, no_show: bool = False
) -> dict[str, str]:
    """A clinic whose Schedule serves a HealthcareService configured for billing."""
    clinic = make_clinic(client)
    organization = post(client, {"resourceType": "Organization", "name": "Riverside"})
    extensions = []
    if visit:
        extensions.append({"url": billing.VISIT_CODE, "valueCodeableConcept": VISIT_CODE})
    if no_show:
        extensions.append({"url": billing.NO_SHOW_FEE, "valueCodeableConcept": NO_SHOW_CODE})
    service = post(
        client,
        {
            "resourceType": "HealthcareService",
            "name": "General practice",
            "providedBy": {"reference": f"Organization/{organization['id']}"},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "394814009"}]}],
            **({"extension": extensions} if extensions else {}),
        },
    )
    schedule = post(
        client,
        {
            "resourceType": "Schedule",
            "active": True,
            "actor": [
                {"reference": f"PractitionerRole/{clinic['role']}"},
                {"reference": f"Location/{clinic['location']}"},
                {"reference": f"HealthcareService/{service['id']}"},
            ],
        },
    )
    return {
        **clinic,
        "schedule": schedule["id"],
        "service": service["id"],
        "organization": organization["id"],
    }


def booked(client: TestClient, clinic: dict[str, str], start: datetime) -> dict[str, Any]:
    slot = make_slot(client, clinic["schedule"], start)
    response = client.post(
        "/fhir/Appointment", json=appointment(make_patient(client), slot), headers=HEADERS
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def started(client: TestClient, clinic: dict[str, str]) -> dict[str, Any]:
    """A booking whose start has just passed (a no-show can only be recorded after it)."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    body = booked(client, clinic, start)
    time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.2)
    return body


def set_status(client: TestClient, appointment_id: str, status: str, **headers: str) -> Any:
    return client.patch(
        f"/fhir/Appointment/{appointment_id}",
        json=[{"op": "replace", "path": "/status", "value": status}],
        headers={**PATCH, **headers},
    )


def search(client: TestClient, query: str, **headers: str) -> list[dict[str, Any]]:
    response = client.get(f"/fhir/{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [
        e["resource"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"
    ]


def visit_of(client: TestClient, appointment_id: str) -> dict[str, Any]:
    found = search(client, f"Encounter?appointment=Appointment/{appointment_id}")
    assert len(found) == 1, found
    return found[0]


def charges_of(client: TestClient, appointment_id: str) -> dict[str, dict[str, Any]]:
    """The Appointment's ChargeItems (found through its Encounter), by code."""
    context = f"Encounter/{encounter_id(appointment_id)}"
    return {
        c["code"]["coding"][0]["code"]: c for c in search(client, f"ChargeItem?context={context}")
    }


def test_check_in_then_fulfilled_leaves_a_finished_encounter_and_one_billable_charge(
    client: TestClient,
) -> None:
    clinic = billed_clinic(client)
    appt = booked(client, clinic, hours_from_now(3))
    patient = next(p["actor"]["reference"] for p in appt["participant"]
                   if p["actor"]["reference"].startswith("Patient/"))  # fmt: skip
    assert search(client, f"Encounter?appointment=Appointment/{appt['id']}") == []

    arrived = set_status(client, appt["id"], "arrived")
    assert arrived.status_code == 200, arrived.text
    encounter = visit_of(client, appt["id"])
    assert encounter["status"] == "arrived"
    assert encounter["subject"] == {"reference": patient}
    assert encounter["participant"] == [
        {"individual": {"reference": f"PractitionerRole/{clinic['role']}"}}
    ]
    assert encounter["location"] == [{"location": {"reference": f"Location/{clinic['location']}"}}]
    assert encounter["serviceType"]["coding"][0]["code"] == "394814009"
    assert encounter["serviceProvider"] == {"reference": f"Organization/{clinic['organization']}"}
    assert encounter["period"]["start"] == arrived.json()["meta"]["lastUpdated"]
    assert charges_of(client, appt["id"]) == {}

    # A plain PUT of the whole Appointment records the outcome as well as a PATCH does.
    done = client.put(
        f"/fhir/Appointment/{appt['id']}",
        json={**arrived.json(), "status": "fulfilled"},
        headers=STAFF,
    )
    assert done.status_code == 200, done.text
    finished = visit_of(client, appt["id"])
    assert finished["id"] == encounter["id"] and finished["status"] == "finished"
    assert finished["meta"]["versionId"] == "2"
    assert finished["period"] == {
        "start": encounter["period"]["start"],
        "end": done.json()["meta"]["lastUpdated"],
    }
    charges = charges_of(client, appt["id"])
    assert list(charges) == ["99213"]
    charge = charges["99213"]
    assert charge["status"] == "billable"
    assert charge["code"] == VISIT_CODE
    assert charge["subject"] == {"reference": patient}
    assert charge["performer"] == [{"actor": {"reference": f"PractitionerRole/{clinic['role']}"}}]
    assert charge["occurrenceDateTime"] == appt["start"]
    assert charge["context"] == {"reference": f"Encounter/{encounter['id']}"}
    assert charge["supportingInformation"] == [{"reference": f"Appointment/{appt['id']}"}]
    assert charge["performingOrganization"] == {
        "reference": f"Organization/{clinic['organization']}"
    }
    history = client.get(f"/fhir/Encounter/{encounter['id']}/_history").json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["finished", "arrived"]
