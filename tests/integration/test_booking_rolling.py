"""The rolling generation command: Slots up to the horizon, idempotent, expired holds released."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_server.scheduling.cli import slots_app
from fhir_server.settings import Settings
from tests.integration.scheduling_setup import HEADERS, make_patient
from tests.integration.test_booking_operations import clinic, find, next_weekday


def _run(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> str:
    monkeypatch.setenv("FHIR_MONGODB_URI", str(settings.mongodb_uri))
    monkeypatch.setenv("FHIR_DATABASE", settings.database)
    monkeypatch.setenv("FHIR_PUBLIC_BASE_URL", settings.base_url)
    result = CliRunner().invoke(slots_app, ["generate", "--horizon-days", "10"])
    assert result.exit_code == 0, result.output
    return result.output


def test_rolling_generation_and_hold_release(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = client.app.state.services.settings  # type: ignore[attr-defined]
    site = clinic(client, "Europe/London", hold_seconds=1)
    practitioner = site["practitioner"]["id"]
    first = _run(monkeypatch, settings)
    assert f"Schedule/{site['schedule']['id']}:" in first
    assert " 0 created" not in first.split(f"Schedule/{site['schedule']['id']}:")[1].split("\n")[0]
    day = next_weekday(2)
    proposals = find(client, day, 1, practitioner=practitioner)
    assert proposals
    everything = find(client, day - timedelta(days=3), 14, practitioner=practitioner)
    assert all(p["start"][14:] == "00:00Z" for p in everything), "slots start on the hour"
    beyond = find(client, day + timedelta(days=14), 5, practitioner=practitioner)
    assert beyond == []

    second = _run(monkeypatch, settings)
    assert f"Schedule/{site['schedule']['id']}: 0 created" in second

    held = client.post(
        "/fhir/Appointment/$hold",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "appt-resource",
                    "resource": {
                        **proposals[0],
                        "participant": [
                            {
                                "actor": {"reference": f"Patient/{make_patient(client)}"},
                                "status": "needs-action",
                            }
                        ],
                    },
                }
            ],
        },
        headers=HEADERS,
    ).json()["entry"][0]["resource"]
    time.sleep(1.5)
    _run(monkeypatch, settings)
    assert client.get(f"/fhir/Appointment/{held['id']}").json()["status"] == "cancelled"
    slot = client.get(f"/fhir/{proposals[0]['slot'][0]['reference']}").json()
    assert slot["status"] == "free"
