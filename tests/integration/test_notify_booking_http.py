"""Bookings made over the FHIR API notify through the real worker: the engine's event port."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications import celery_app
from fhir_server.notifications.celery_app import RELEASE_HOLDS_TASK
from fhir_server.scheduling import extensions as ext
from tests.integration.notify_support import (
    Running,
    fhir_json,
    patient_with_email,
    wait_until,
)
from tests.integration.scheduling_setup import (
    HEADERS,
    appointment,
    hours_from_now,
    make_clinic,
    make_slot,
    post,
)

JSON_PATCH = {"content-type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def api(env: Running) -> Iterator[TestClient]:
    with TestClient(create_app(env.rig.settings)) as client:
        yield client


def _subjects(env: Running, address: str) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in env.smtp.to(address)]


def _wait_mails(env: Running, address: str, count: int) -> list[str]:
    wait_until(lambda: len(env.smtp.to(address)) >= count, timeout=30)
    return _subjects(env, address)


def _subscribe_ehr(env: Running, api: TestClient, role: str, status: str) -> str:
    """An EHR's rest-hook Subscription to one PractitionerRole's Appointments; its hook path."""
    hook = f"/hook/{os.urandom(4).hex()}"
    post(
        api,
        {
            "resourceType": "Subscription",
            "status": status,
            "reason": "EHR",
            "criteria": f"Appointment?actor=PractitionerRole/{role}",
            "channel": {
                "type": "rest-hook",
                "endpoint": f"{env.http.url}{hook}",
                "payload": "application/fhir+json",
            },
        },
    )
    return hook


def test_book_move_cancel_over_http_mails_the_patient_and_hooks_the_ehr(
    env: Running, api: TestClient
) -> None:
    clinic = make_clinic(api)
    hook = _subscribe_ehr(env, api, clinic["role"], "requested")
    pid, address = patient_with_email(api, "http", "Roe")
    first, second = (make_slot(api, clinic["schedule"], hours_from_now(h)) for h in (70, 74))
    booked = api.post("/fhir/Appointment", json=appointment(pid, first), headers=HEADERS)
    assert booked.status_code == 201, booked.text
    appt = booked.json()
    assert _wait_mails(env, address, 1)[0].startswith("Your appointment is booked")

    moved = api.patch(
        f"/fhir/Appointment/{appt['id']}",
        json=[{"op": "replace", "path": "/slot", "value": [{"reference": f"Slot/{second['id']}"}]}],
        headers=JSON_PATCH,
    )
    assert moved.status_code == 200, moved.text
    assert _wait_mails(env, address, 2)[1].startswith("Your appointment was moved")

    current = api.get(f"/fhir/Appointment/{appt['id']}").json()
    cancelled = api.put(
        f"/fhir/Appointment/{appt['id']}",
        json={**current, "status": "cancelled", "cancelationReason": {"text": "Cannot come"}},
        headers=HEADERS,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert _wait_mails(env, address, 3)[2].startswith("Your appointment was cancelled")
    # The EHR's rest-hook saw the same three versions, in order.
    wait_until(lambda: len(env.http.posted(hook)) >= 3, timeout=30)
    statuses = [fhir_json(r.body)["status"] for r in env.http.posted(hook)]
    starts = [fhir_json(r.body)["start"] for r in env.http.posted(hook)]
    assert statuses == ["booked", "booked", "cancelled"]
    assert starts[0] != starts[1] == starts[2]


def test_expired_hold_goes_to_the_subscription_only(env: Running, api: TestClient) -> None:
    clinic = make_clinic(api)
    schedule = api.get(f"/fhir/Schedule/{clinic['schedule']}").json()
    schedule["extension"].append(
        {"url": ext.HOLD_DURATION, "valueDuration": {"value": 1, "code": "s"}}
    )
    updated = api.put(f"/fhir/Schedule/{schedule['id']}", json=schedule, headers=HEADERS)
    assert updated.status_code == 200, updated.text
    hook = _subscribe_ehr(env, api, clinic["role"], "active")
    pid, address = patient_with_email(api, "hold", "Poe")
    slot = make_slot(api, clinic["schedule"], hours_from_now(80))
    proposal: dict[str, Any] = {**appointment(pid, slot), "status": "proposed"}
    proposal["participant"] = [
        *proposal["participant"],
        {"actor": {"reference": f"PractitionerRole/{clinic['role']}"}, "status": "needs-action"},
    ]
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "appt-resource", "resource": proposal}],
    }
    held = api.post("/fhir/Appointment/$hold", json=body, headers=HEADERS)
    assert held.status_code == 200, held.text
    # Beat's hold-expiry job, run by the worker once the 1 s hold has passed.
    time.sleep(1.2)
    celery_app.current().send_task(RELEASE_HOLDS_TASK)
    wait_until(lambda: env.http.posted(hook), timeout=30)
    [expired] = [fhir_json(r.body) for r in env.http.posted(hook)]
    assert expired["status"] == "cancelled"
    assert env.smtp.to(address) == []  # neither the hold nor its expiry is mailed


def test_a_reschedule_announces_the_move_and_a_cancellation_is_one_whatever_its_text(
    env: Running, api: TestClient
) -> None:
    """The engine, not the cancellation reason's text, says when a cancellation is a move's."""
    clinic = make_clinic(api)
    pid, address = patient_with_email(api, "move", "Moe")
    first, second = (make_slot(api, clinic["schedule"], hours_from_now(h)) for h in (90, 94))
    old = post(api, appointment(pid, first))
    assert _wait_mails(env, address, 1)[0].startswith("Your appointment is booked")
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "appt-resource", "resource": appointment(pid, second)},
            {"name": "cancelled-appt-id", "valueString": old["id"]},
        ],
    }
    moved = api.post("/fhir/Appointment/$book", json=params, headers=HEADERS)
    assert moved.status_code == 200, moved.text
    assert _wait_mails(env, address, 2)[1].startswith("Your appointment was moved")
    [new] = [e["resource"] for e in moved.json()["entry"]]
    reason = {"text": "Rescheduled"}  # the text a move writes on the old one
    cancelled = api.put(
        f"/fhir/Appointment/{new['id']}",
        json={**new, "status": "cancelled", "cancelationReason": reason},
        headers=HEADERS,
    )
    assert cancelled.status_code == 200, cancelled.text
    subjects = _wait_mails(env, address, 3)
    assert subjects[2].startswith("Your appointment was cancelled")
    time.sleep(0.5)  # and the move's own cancellation of the old one sent nothing
    assert len(_subjects(env, address)) == 3
