"""A small clinic and a patient FHIR client for the portal booking tests.

The clinic is written through the store (setup, not under test); the client
talks to the real app over ASGI with a patient token, as the portal does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from fhir_server.ui.fhir_api import PortalApiError
from fhir_server.ui.portal.booking_api import Params, Resource
from tests.integration.auth_helpers import call, create, mint
from tests.integration.scheduling_setup import duration, instant

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
CUTOFF = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-cancellation-cutoff"
PHONE = "+44 20 7946 0999"


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
    """The BookingClient protocol over the real app, with a patient token."""

    def __init__(self, client: TestClient, patient_id: str) -> None:
        self.client = client
        self.patient: str | None = patient_id
        token = mint(
            client, "patient/*.cruds", patient=patient_id, fhir_user=f"Patient/{patient_id}"
        )
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Resource | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Resource:
        transport = httpx.ASGITransport(app=self.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.request(
                method,
                f"/fhir/{path}",
                params=params,
                json=json_body,
                headers={**self.headers, **(headers or {})},
            )
        body: Resource = response.json()
        if response.status_code >= 400:
            raise PortalApiError(response.status_code, body)
        return body

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        return await self.request("GET", f"{resource_type}/{resource_id}")

    async def search(self, resource_type: str, params: Params | None = None) -> Resource:
        return await self.request("GET", resource_type, params=params)

    async def operation(self, path: str, parameters: Resource | None = None) -> Resource:
        return await self.request("POST", path, json_body=parameters)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return call(self.client, fn, self, *args)
