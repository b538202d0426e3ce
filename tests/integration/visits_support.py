"""Builders shared by the visits tests: a clinic whose service is configured for billing,
bookings, status changes through the API, and the Encounter and ChargeItems they leave."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fhir_server.visits import billing
from fhir_server.visits.records import encounter_id
from tests.integration.scheduling_setup import (
    HEADERS,
    appointment,
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
