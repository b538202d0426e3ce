"""Each appointment event reaches each channel through a real worker, broker and servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.notifications.events import AppointmentEvent
from fhir_server.notifications.preferences import preferences_extension
from fhir_server.settings import Settings
from tests.integration.notify_support import Running, start_all, stop_all


@pytest.fixture(scope="module")
def env(settings_factory: Callable[..., Settings]) -> Iterator[Running]:
    running = start_all(settings_factory)
    yield running
    stop_all(running)


def person(rtype: str, env: Running, family: str, **extra: Any) -> dict[str, Any]:
    return env.rig.create(
        {"resourceType": rtype, "name": [{"family": family, "given": ["Ann"]}], **extra}
    )


def appointment(env: Running, *actors: dict[str, Any], hours: float = 72) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)
    location = env.rig.create(
        {
            "resourceType": "Location",
            "name": "Rue de Rivoli clinic",
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/timezone",
                    "valueCode": "Europe/Paris",
                }
            ],
        }
    )
    return env.rig.create(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "description": "Knee pain follow-up",
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
            "participant": [
                *({"actor": {"reference": f"{a['resourceType']}/{a['id']}"}, "status": "accepted"} for a in actors),
                {"actor": {"reference": f"Location/{location['id']}"}, "status": "accepted"},
            ],
        }
    )


def test_booking_emails_patient_with_calendar_request(env: Running) -> None:
    patient = person("Patient", env, "Martin", telecom=[{"system": "email", "value": "ann@example.org"}])
    appt = appointment(env, patient)
    ids = env.rig.record(AppointmentEvent("booked", appt))
    assert len(ids) == 1
    [comm] = env.rig.wait_settled(ids)
    assert comm["status"] == "completed", comm
    [mail] = env.smtp.to("ann@example.org")
    assert "booked" in mail["Subject"]
    kinds = [p.get_content_type() for p in mail.walk()]
    assert "text/plain" in kinds and "text/html" in kinds and "text/calendar" in kinds
    ics = next(p for p in mail.walk() if p.get_content_type() == "text/calendar").get_payload(decode=True)
    assert b"METHOD:REQUEST" in ics and f"UID:{appt['id']}@clinic-booking".encode() in ics
