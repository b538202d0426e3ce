"""EHRs and billing systems follow visits and charges by R4 rest-hook Subscription.

Auth on, a real Celery worker, and a local HTTP server standing in for the EHR
and billing endpoints: check-in, fulfilment and its correction each reach the
Subscriptions whose criteria match, and only those whose owner's token could
read the record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications.message import message_id
from fhir_server.notifications.topics import FILTER_EXT, PAYLOAD_EXT, TOPIC_BASE
from fhir_server.settings import Settings
from tests.integration.auth_helpers import bearer, mint
from tests.integration.notify_support import Running, fhir_json, start_all, stop_all, wait_until
from tests.integration.scheduling_setup import (
    appointment,
    hours_from_now,
    make_patient,
    make_slot,
)
from tests.integration.visits_support import CPT, billed_clinic, set_status

EVERYTHING = "system/*.cruds"
FHIR = {"content-type": "application/fhir+json"}


@pytest.fixture(scope="module")
def env(settings_factory: Callable[..., Settings]) -> Iterator[Running]:
    running = start_all(settings_factory, auth_enabled=True)
    yield running
    stop_all(running)


@pytest.fixture(scope="module")
def api(env: Running) -> Iterator[TestClient]:
    with TestClient(create_app(env.rig.settings)) as client:
        client.headers["Authorization"] = f"Bearer {mint(client, EVERYTHING, client_id='ehr')}"
        yield client


def _subscribe(
    env: Running,
    api: TestClient,
    criteria: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[str, str]:
    """A rest-hook Subscription with the resource as payload; (its id, its hook path)."""
    hook = f"/hook/{os.urandom(4).hex()}"
    channel = {
        "type": "rest-hook",
        "endpoint": f"{env.http.url}{hook}",
        "payload": "application/fhir+json",
        **extra.pop("channel", {}),
    }
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "billing",
        "criteria": criteria,
        "channel": channel,
        **extra,
    }
    response = api.post("/fhir/Subscription", json=body, headers={**FHIR, **(headers or {})})
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), hook


def _posted(env: Running, hook: str, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(env.http.posted(hook)) >= count, timeout=40)
    return [fhir_json(r.body) for r in env.http.posted(hook)]


def _book(api: TestClient, clinic: dict[str, str], patient: str) -> dict[str, Any]:
    slot = make_slot(api, clinic["schedule"], hours_from_now(30))
    response = api.post("/fhir/Appointment", json=appointment(patient, slot), headers=FHIR)
    assert response.status_code == 201, response.text
    booked: dict[str, Any] = response.json()
    return booked


def test_visit_and_charge_changes_reach_the_subscriptions_that_follow_them(
    env: Running, api: TestClient
) -> None:
    clinic = billed_clinic(api)
    pid, other = make_patient(api), make_patient(api)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    _, visits = _subscribe(env, api, f"Encounter?patient=Patient/{pid}")
    _, finished = _subscribe(env, api, f"Encounter?status=finished&subject={pid}")
    _, charges = _subscribe(env, api, f"ChargeItem?subject=Patient/{pid}")
    _, coded = _subscribe(env, api, f"ChargeItem?entered-date=ge{since}&code={CPT}|99213")
    _, elsewhere = _subscribe(env, api, f"Encounter?patient=Patient/{other}")
    # A billing system allowed to read one patient's charges only, and one allowed another's.
    mine = bearer(mint(api, f"system/Subscription.cru system/ChargeItem.rs?subject=Patient/{pid}"))
    theirs = bearer(mint(api, f"system/Subscription.cru system/ChargeItem.rs?subject={other}"))
    _, allowed = _subscribe(env, api, "ChargeItem?code=99213", mine)
    hidden_id, hidden = _subscribe(env, api, "ChargeItem?code=99213", theirs)

    appt = _book(api, clinic, pid)
    for status in ("arrived", "fulfilled", "entered-in-error"):  # check-in, outcome, mistake
        assert set_status(api, appt["id"], status).status_code == 200

    encounters = _posted(env, visits, 3)
    assert [e["status"] for e in encounters] == ["arrived", "finished", "entered-in-error"]
    assert {e["appointment"][0]["reference"] for e in encounters} == {f"Appointment/{appt['id']}"}
    [done] = [e for e in _posted(env, finished, 1) if e["id"] == encounters[0]["id"]]
    assert done["status"] == "finished"
    billed = _posted(env, charges, 2)
    assert [c["status"] for c in billed] == ["billable", "entered-in-error"]
    assert billed[0]["context"]["reference"] == f"Encounter/{encounters[0]['id']}"
    assert [c["status"] for c in _posted(env, coded, 2) if c["id"] == billed[0]["id"]] == [
        "billable",
        "entered-in-error",
    ]
    assert [c["id"] for c in _posted(env, allowed, 2)] == [billed[0]["id"]] * 2
    # Nothing was even recorded for the Subscriptions whose criteria or owner exclude them.
    charge_version = f"ChargeItem/{billed[0]['id']}/_history/1"
    key = f"{charge_version}|changed|rest-hook|Subscription/{hidden_id}"
    assert api.get(f"/fhir/Communication/{message_id(key)}").status_code == 404
    assert env.http.posted(hidden) == [] and env.http.posted(elsewhere) == []
    assert len(env.http.posted(visits)) == 3


def _topic(query: str, content: str) -> dict[str, Any]:
    """The Backport IG's filter and payload extensions of a topic-based Subscription."""
    return {
        "_criteria": {"extension": [{"url": FILTER_EXT, "valueString": query}]},
        "channel": {"_payload": {"extension": [{"url": PAYLOAD_EXT, "valueCode": content}]}},
    }


def test_topic_based_subscriptions_get_the_visit_topics(env: Running, api: TestClient) -> None:
    clinic, pid = billed_clinic(api), make_patient(api)
    charges_topic = f"{TOPIC_BASE}/charge-item-changed"
    charge_filter = _topic(f"ChargeItem?patient=Patient/{pid}", "full-resource")
    sid, charges = _subscribe(env, api, charges_topic, **charge_filter)
    finished_filter = _topic(f"Encounter?status=finished&patient={pid}", "id-only")
    _, visits = _subscribe(env, api, f"{TOPIC_BASE}/encounter-changed", **finished_filter)
    appt = _book(api, clinic, pid)
    for status in ("arrived", "fulfilled", "entered-in-error"):
        assert set_status(api, appt["id"], status).status_code == 200

    bundles = _posted(env, charges, 2)
    statuses = [b["entry"][0]["resource"] for b in bundles]
    numbers = [_event(s)["event-number"] for s in statuses]
    assert numbers == ["1", "2"] and all(b["type"] == "history" for b in bundles)
    assert [b["entry"][1]["resource"]["status"] for b in bundles] == [
        "billable",
        "entered-in-error",
    ]
    assert statuses[0]["parameter"][0]["valueReference"]["reference"].endswith(sid)
    [finished] = _posted(env, visits, 1)
    focus = _event(finished["entry"][0]["resource"])["focus"]
    assert focus.endswith(finished["entry"][1]["request"]["url"]) and "/Encounter/" in focus
    assert "resource" not in finished["entry"][1]  # id-only


def _event(status: dict[str, Any]) -> dict[str, Any]:
    """The notification-event of a status Parameters: part name -> value."""
    [event] = [p for p in status["parameter"] if p["name"] == "notification-event"]
    out: dict[str, Any] = {}
    for part in event["part"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        out[part["name"]] = value.get("reference") if isinstance(value, dict) else value
    return out


def test_a_record_written_over_the_api_is_a_change_too(env: Running, api: TestClient) -> None:
    pid = make_patient(api)
    _, hook = _subscribe(env, api, f"Encounter?subject:Patient={pid}&class=AMB")
    body = {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
    }
    created = api.post("/fhir/Encounter", json=body, headers=FHIR)
    assert created.status_code == 201, created.text
    voided = {**created.json(), "status": "entered-in-error"}
    updated = api.put(f"/fhir/Encounter/{voided['id']}", json=voided, headers=FHIR)
    assert updated.status_code == 200, updated.text
    assert [e["status"] for e in _posted(env, hook, 2)] == ["planned", "entered-in-error"]


def test_a_token_cannot_subscribe_to_what_it_may_not_read(env: Running, api: TestClient) -> None:
    billing = bearer(mint(api, "system/Subscription.cru system/ChargeItem.rs"))
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "billing",
        "criteria": "Encounter?status=finished",
        "channel": {"type": "rest-hook", "endpoint": f"{env.http.url}/hook/refused"},
    }
    refused = api.post("/fhir/Subscription", json=body, headers={**FHIR, **billing})
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    forged = {
        **body,
        "criteria": "ChargeItem?code=99213",
        "extension": [{"url": "https://clinic-booking.example.org/fhir/StructureDefinition/"
                       "subscription-owner", "extension": [{"url": "scope",
                                                             "valueString": "system/*.rs"}]}],
    }  # fmt: skip
    stored = api.post("/fhir/Subscription", json=forged, headers={**FHIR, **billing})
    assert stored.status_code == 201, stored.text
    [owner] = stored.json()["extension"]
    parts = {p["url"]: p["valueString"] for p in owner["extension"]}
    assert parts["scope"] == "system/Subscription.cru system/ChargeItem.rs"  # not the forged one
