"""Builders shared by the booking tests: a clinic (Location, PractitionerRole,
HealthcareService, Schedule) and Slots, written through the FHIR API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fhir_server.scheduling import extensions as ext
from tests.conftest import FHIR_JSON, patient

HEADERS = {"content-type": FHIR_JSON}
STAFF = {**HEADERS, "x-actor-role": "frontdesk"}


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hours_from_now(hours: float) -> datetime:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return base + timedelta(hours=hours)


def post(client: TestClient, resource: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=HEADERS)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def duration(minutes: float) -> dict[str, Any]:
    return {"value": minutes, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}


def make_schedule(
    client: TestClient, role_id: str, location_id: str, extensions: list[dict[str, Any]]
) -> dict[str, Any]:
    """An active Schedule over a PractitionerRole and a Location, with booking extensions."""
    return post(
        client,
        {
            "resourceType": "Schedule",
            "active": True,
            "extension": extensions,
            "actor": [
                {"reference": f"PractitionerRole/{role_id}"},
                {"reference": f"Location/{location_id}"},
            ],
        },
    )


def make_clinic(client: TestClient, **settings: Any) -> dict[str, str]:
    """Location, Practitioner, PractitionerRole, HealthcareService and a Schedule over them.

    `settings` keys: notice_minutes, max_days, cutoff_minutes, confirm, capacity.
    """
    location = post(
        client,
        {
            "resourceType": "Location",
            "name": "Clinic",
            "extension": [{"url": ext.TIMEZONE, "valueCode": "America/New_York"}],
            "address": {"country": "US", "state": "NY"},
        },
    )
    practitioner = post(client, {"resourceType": "Practitioner", "name": [{"family": "Who"}]})
    role = post(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{practitioner['id']}"},
            "location": [{"reference": f"Location/{location['id']}"}],
        },
    )
    extensions: list[dict[str, Any]] = [{"url": ext.SLOT_LENGTH, "valueDuration": duration(30)}]
    if "notice_minutes" in settings:
        extensions.append(
            {"url": ext.MINIMUM_NOTICE, "valueDuration": duration(settings["notice_minutes"])}
        )
    if "max_days" in settings:
        extensions.append({"url": ext.MAXIMUM_DAYS_AHEAD, "valuePositiveInt": settings["max_days"]})
    if "cutoff_minutes" in settings:
        extensions.append(
            {"url": ext.CANCELLATION_CUTOFF, "valueDuration": duration(settings["cutoff_minutes"])}
        )
    if settings.get("confirm"):
        extensions.append({"url": ext.PROVIDER_MUST_CONFIRM, "valueBoolean": True})
    if "capacity" in settings:
        extensions.append({"url": ext.CAPACITY, "valuePositiveInt": settings["capacity"]})
    schedule = make_schedule(client, role["id"], location["id"], extensions)
    return {
        "location": location["id"],
        "practitioner": practitioner["id"],
        "role": role["id"],
        "schedule": schedule["id"],
    }


def make_slot(
    client: TestClient, schedule: str, start: datetime, minutes: int = 30, status: str = "free"
) -> dict[str, Any]:
    return post(
        client,
        {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{schedule}"},
            "status": status,
            "start": instant(start),
            "end": instant(start + timedelta(minutes=minutes)),
        },
    )


def make_patient(client: TestClient, family: str = "Doe") -> str:
    return str(post(client, patient(family=family))["id"])


def appointment(patient_id: str, *slots: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A booked Appointment for the Slots, with their times (as a client sends it)."""
    body: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": min(s["start"] for s in slots),
        "end": max(s["end"] for s in slots),
        "slot": [{"reference": f"Slot/{s['id']}"} for s in slots],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }
    return {**body, **extra}


def diagnostics(response: Any) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(issue.get("diagnostics", "") for issue in body["issue"])
