"""A small clinic for the clinic workspace's schedule tests: two clinicians (Okafor, whose
Schedule needs the provider's confirmation, and Shah), their staff logins and a patient.

The clinic and past appointments are written through the store (setup, not under test);
a request waiting for confirmation is booked by the patient over the API, as the portal
does, so the booking engine makes it `pending`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.auth_helpers import add_user, bearer, call, create, mint
from tests.integration.scheduling_setup import instant

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
MUST_CONFIRM = (
    "https://clinic-booking.example.org/fhir/StructureDefinition/booking-provider-must-confirm"
)
ZONE = "Europe/London"


@dataclass
class Clinic:
    location: str
    service: str
    roles: dict[str, str]  # family -> PractitionerRole id
    practitioners: dict[str, str]  # family -> Practitioner id
    schedules: dict[str, str]  # family -> Schedule id
    patient: str
    patient_email: str


def seed(client: TestClient, prefix: str) -> Clinic:
    """The clinic, and logins `<prefix>-doc` (Okafor), `-desk`, `-admin`, `-pat`."""
    location = create(
        client,
        {
            "resourceType": "Location",
            "name": "Quay Clinic",
            "extension": [{"url": TIMEZONE, "valueCode": ZONE}],
            "address": {"city": "London", "country": "GB"},
        },
    )
    service = create(
        client, {"resourceType": "HealthcareService", "active": True, "name": "GP appointment"}
    )
    roles, practitioners, schedules = {}, {}, {}
    for family, confirm in (("Okafor", True), ("Shah", False)):
        practitioners[family] = create(
            client,
            {"resourceType": "Practitioner", "name": [{"family": family, "given": ["Dr"]}]},
        )
        roles[family] = create(
            client,
            {
                "resourceType": "PractitionerRole",
                "practitioner": {"reference": f"Practitioner/{practitioners[family]}"},
                "location": [{"reference": f"Location/{location}"}],
            },
        )
        schedule: dict[str, Any] = {
            "resourceType": "Schedule",
            "active": True,
            "actor": [
                {"reference": f"PractitionerRole/{roles[family]}"},
                {"reference": f"Location/{location}"},
                {"reference": f"HealthcareService/{service}"},
            ],
        }
        if confirm:
            schedule["extension"] = [{"url": MUST_CONFIRM, "valueBoolean": True}]
        schedules[family] = create(client, schedule)
    email = f"{prefix}-pat@example.org"
    patient = create(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "telecom": [{"system": "email", "value": email}],
        },
    )
    add_user(client, f"{prefix}-doc", "practitioner", f"Practitioner/{practitioners['Okafor']}")
    add_user(client, f"{prefix}-desk", "frontdesk", None)
    add_user(client, f"{prefix}-admin", "admin", None)
    add_user(client, f"{prefix}-pat", "patient", f"Patient/{patient}", email=email)
    return Clinic(location, service, roles, practitioners, schedules, patient, email)


def stored_visit(
    client: TestClient, clinic: Clinic, family: str, start: datetime, status: str = "booked"
) -> str:
    """An Appointment with a clinician at `start` (30 minutes), written through the store."""
    participants = [
        f"Patient/{clinic.patient}",
        f"PractitionerRole/{clinic.roles[family]}",
        f"Location/{clinic.location}",
        f"HealthcareService/{clinic.service}",
    ]
    return create(
        client,
        {
            "resourceType": "Appointment",
            "status": status,
            "start": instant(start),
            "end": instant(start + timedelta(minutes=30)),
            "participant": [
                {"actor": {"reference": ref}, "status": "accepted"} for ref in participants
            ],
        },
    )


def requested_visit(client: TestClient, clinic: Clinic, start: datetime) -> str:
    """A request to Okafor (who confirms), booked by the patient over the API: `pending`."""
    slot = create(
        client,
        {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{clinic.schedules['Okafor']}"},
            "status": "free",
            "start": instant(start),
            "end": instant(start + timedelta(minutes=30)),
        },
    )
    token = mint(
        client, "patient/*.cruds", patient=clinic.patient, fhir_user=f"Patient/{clinic.patient}"
    )
    booked = client.post(
        "http://testserver/fhir/Appointment",
        json={
            "resourceType": "Appointment",
            "status": "booked",
            "start": instant(start),
            "end": instant(start + timedelta(minutes=30)),
            "slot": [{"reference": f"Slot/{slot}"}],
            "participant": [
                {"actor": {"reference": f"Patient/{clinic.patient}"}, "status": "accepted"}
            ],
        },
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "pending"
    return str(booked.json()["id"])


def stored(client: TestClient, resource_type: str, rid: str) -> dict[str, Any]:
    """The current version of a resource, read from the store."""
    store = client.app.state.services.store  # type: ignore[attr-defined]
    version = call(client, store.current, resource_type, rid)
    assert version is not None and version.resource is not None
    body: dict[str, Any] = version.resource
    return body


def search(client: TestClient, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """A search over the API as an admin (who reads everything); the matching resources."""
    token = mint(client, "user/*.cruds", role="admin")
    found = client.get(
        f"http://testserver/fhir/{resource_type}", params=params, headers=bearer(token)
    )
    assert found.status_code == 200, found.text
    return [
        e["resource"]
        for e in found.json().get("entry", [])
        if e.get("search", {}).get("mode", "match") == "match"
    ]
