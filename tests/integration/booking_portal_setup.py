"""A small clinic and a patient FHIR client for the portal booking tests.

The clinic is written through the store (setup, not under test); the client
talks to the real app over ASGI with a patient token, as the portal does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fhir_server.ui.fhir_api import InProcessApi, PortalApi
from tests.integration.auth_helpers import call, create, mint
from tests.integration.scheduling_setup import duration, instant

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
CUTOFF = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-cancellation-cutoff"
PHONE = "+44 20 7946 0999"
SITE = "http://testserver"


@dataclass
class Clinic:
    service: str
    location: str
    schedules: dict[str, str]  # clinician family -> Schedule id
    empty_service: str


def seed_clinic(client: TestClient, cutoff_hours: float = 24) -> Clinic:
    location = create(
        client,
        {
            "resourceType": "Location",
            "name": "Harbour Clinic",
            "extension": [{"url": TIMEZONE, "valueCode": "Europe/London"}],
            "address": {"line": ["1 Quay Street"], "city": "London", "country": "GB"},
            "telecom": [{"system": "phone", "value": PHONE}],
        },
    )

    def service(name: str) -> str:
        return create(
            client,
            {
                "resourceType": "HealthcareService",
                "active": True,
                "name": name,
                "location": [{"reference": f"Location/{location}"}],
                "telecom": [{"system": "phone", "value": PHONE}],
            },
        )

    gp, empty = service("GP appointment"), service("Travel vaccines")
    schedules = {}
    for family, svc in (("Okafor", gp), ("Shah", gp), ("Nobody", empty)):
        practitioner = create(
            client, {"resourceType": "Practitioner", "name": [{"family": family}]}
        )
        role = create(
            client,
            {
                "resourceType": "PractitionerRole",
                "practitioner": {"reference": f"Practitioner/{practitioner}"},
            },
        )
        schedules[family] = create(
            client,
            {
                "resourceType": "Schedule",
                "active": True,
                "extension": [
                    {"url": TIMEZONE, "valueCode": "Europe/London"},
                    {"url": CUTOFF, "valueDuration": duration(cutoff_hours * 60)},
                ],
                "actor": [
                    {"reference": f"PractitionerRole/{role}", "display": f"Dr {family}"},
                    {"reference": f"Location/{location}", "display": "Harbour Clinic"},
                    {"reference": f"HealthcareService/{svc}", "display": "GP"},
                ],
            },
        )
    return Clinic(gp, location, schedules, empty)


def add_slot(client: TestClient, schedule: str, start: datetime, minutes: int = 15) -> str:
    return create(
        client,
        {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{schedule}"},
            "status": "free",
            "start": instant(start),
            "end": instant(start + timedelta(minutes=minutes)),
        },
    )


def days_ahead(days: int, hour: int) -> datetime:
    """A whole hour `days` from today, in UTC (London is UTC or UTC+1)."""
    today = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days)


class PatientClient:
    """Runs page logic with the portal's own `PortalApi` on a patient's token, in the app."""

    def __init__(self, client: TestClient, patient_id: str) -> None:
        self.client = client
        self.patient = patient_id
        self.token = mint(
            client, "patient/*.cruds", patient=patient_id, fhir_user=f"Patient/{patient_id}"
        )

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(api, *args)` on the app's event loop."""

        async def page() -> Any:
            settings = self.client.app.state.services.settings
            api = InProcessApi(self.client.app, settings, "testclient")
            return await fn(PortalApi(api, self.token, self.patient), *args)

        return call(self.client, page)
