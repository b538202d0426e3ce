"""The booking channel recorded at booking time, and a patient's cancellation coded `pat`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.reporting.channel import CANCEL_REASON_SYSTEM, CHANNEL_URL, channel_in
from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, appointment, bearer, mint, new_patient, system_app
from tests.integration.scheduling_setup import hours_from_now, make_clinic, make_slot

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from system_app(settings_factory)


def booked_with(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    response = client.post(f"{BASE}/Appointment", json=body, headers=headers | FHIR)
    assert response.status_code == 201, response.text
    return response.json()


def test_each_client_books_through_its_own_channel(client: TestClient) -> None:
    alice = new_patient(client, "Channel")
    forged = {"extension": [{"url": CHANNEL_URL, "valueCode": "ehr"}]}
    tokens = {
        "portal": mint(
            client, "user/*.cruds", role="frontdesk", fhir_user="Practitioner/x", client_id="portal"
        ),
        "clinic": mint(client, "user/*.cruds", role="frontdesk", client_id="clinic"),
        "app": mint(client, "user/*.cruds", role="frontdesk", client_id="some-app"),
        "ehr": mint(client, "system/*.cruds", client_id="an-ehr"),
    }
    for expected, token in tokens.items():
        written = booked_with(client, bearer(token), appointment(alice) | forged)
        assert channel_in(written) == expected
        stored = client.get(f"{BASE}/Appointment/{written['id']}").json()
        assert channel_in(stored) == expected


def test_update_keeps_the_stored_channel_and_a_patient_cancellation_is_coded(
    client: TestClient,
) -> None:
    site = make_clinic(client)
    slot = make_slot(client, site["schedule"], hours_from_now(96))
    patient_id = new_patient(client, "Canceller")
    as_patient = bearer(
        mint(
            client,
            "patient/*.cruds",
            patient=patient_id,
            fhir_user=f"Patient/{patient_id}",
            client_id="portal",
        )
    )
    body = appointment(patient_id) | {
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{slot['id']}"}],
    }
    body["participant"] = body["participant"][:1]
    booked = booked_with(client, as_patient, body)
    assert channel_in(booked) == "portal"

    without = {k: v for k, v in booked.items() if k not in ("extension", "meta")}
    cancelled = without | {"status": "cancelled", "cancelationReason": {"text": "Feeling better"}}
    response = client.put(
        f"{BASE}/Appointment/{booked['id']}", json=cancelled, headers=as_patient | FHIR
    )
    assert response.status_code == 200, response.text
    stored = client.get(f"{BASE}/Appointment/{booked['id']}").json()
    assert channel_in(stored) == "portal"
    assert stored["cancelationReason"]["coding"] == [
        {"system": CANCEL_REASON_SYSTEM, "code": "pat"}
    ]
    assert stored["cancelationReason"]["text"] == "Feeling better"
