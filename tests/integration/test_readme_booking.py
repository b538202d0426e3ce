"""The README's Quick start and copy-paste booking, step by step, on the demo clinic with
SMART on: the tokens `users token` prints, Slots in start order, `$find`, then `$book`
with the body the README's one-liner builds from the `$find` answer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_server.app import create_app
from fhir_server.cli import app as cli
from fhir_server.demo.full import prepare_demo
from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, bearer, call, components

PATIENT = "demo-patient-jane-doe"
SCHEDULE = "Schedule/demo-schedule-ada-okafor"
# The scopes the README's booking recipe asks `users token` for.
BOOKING_SCOPE = "patient/*.rs patient/Appointment.cruds"


@pytest.fixture(scope="module")
def demo(settings_factory: Callable[..., Settings]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = settings_factory(auth_enabled=True, database=f"readme{uuid.uuid4().hex[:8]}")
    env = {
        "FHIR_MONGODB_URI": settings.mongodb_uri or "",
        "FHIR_DATABASE": settings.database,
        "FHIR_PUBLIC_BASE_URL": BASE,
    }
    with TestClient(create_app(settings)) as server:
        services = server.app.state.services  # type: ignore[attr-defined]
        call(
            server,
            prepare_demo,
            services.store,
            components(server).store,
            settings,
            datetime.now(UTC),
        )
        yield server, env


def _token(env: dict[str, str], username: str, *scope: str) -> str:
    """`.venv/bin/fhir-server users token USER [--scope ...] | python3 -c '...access_token'`"""
    args = ["users", "token", username, *(["--scope", scope[0]] if scope else [])]
    printed = CliRunner().invoke(cli, args, env=env)
    assert printed.exit_code == 0, printed.output
    token: str = orjson.loads(printed.stdout)["access_token"]
    return token


def test_quick_start_slots_come_in_start_order(demo: tuple[TestClient, dict[str, str]]) -> None:
    server, env = demo
    headers = bearer(_token(env, "demo-practitioner"))
    query = {"schedule": SCHEDULE, "status": "free", "_sort": "start", "_count": "3"}
    page = server.get(f"{BASE}/Slot", params=query, headers=headers)
    assert page.status_code == 200, page.text
    starts = [e["resource"]["start"] for e in page.json()["entry"]]
    assert len(starts) == 3 and starts == sorted(starts)
    whole = server.get(f"{BASE}/Slot", params={**query, "_count": "500"}, headers=headers).json()
    first = sorted(e["resource"]["start"] for e in whole["entry"])[:3]
    assert starts == first  # the earliest free Slots, not three arbitrary ones


def test_the_readme_booking_works_as_written(demo: tuple[TestClient, dict[str, str]]) -> None:
    server, env = demo
    headers = bearer(_token(env, "demo-patient", BOOKING_SCOPE))
    # START=$(python3 -c 'import datetime; print(datetime.date.today() + datetime.timedelta(1))')
    start = date.today() + timedelta(1)
    end = start + timedelta(7)
    found = server.get(
        f"{BASE}/Appointment/$find",
        params={
            "start": start.isoformat(),
            "end": end.isoformat(),
            "practitioner": "demo-practitioner-ada-okafor",
            "patient": f"Patient/{PATIENT}",
            "_count": "1",
        },
        headers=headers,
    )
    assert found.status_code == 200, found.text
    # python3 -c '...; print(json.dumps({"resourceType": "Parameters", "parameter":
    #   [{"name": "appt-resource", "resource": json.load(f)["entry"][0]["resource"]}]}))'
    proposal: dict[str, Any] = found.json()["entry"][0]["resource"]
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "appt-resource", "resource": proposal}],
    }
    booked = server.post(
        f"{BASE}/Appointment/$book",
        content=orjson.dumps(body),
        headers={**headers, "Content-Type": "application/fhir+json"},
    )
    assert booked.status_code == 200, booked.text
    appointment = booked.json()["entry"][0]["resource"]
    assert appointment["status"] == "booked"
    assert {"reference": f"Patient/{PATIENT}"} in [p["actor"] for p in appointment["participant"]]
    mine = server.get(f"{BASE}/Appointment", params={"patient": PATIENT}, headers=headers)
    assert appointment["id"] in [e["resource"]["id"] for e in mine.json().get("entry", [])]
