"""`$bulk-publish` polled the way a slot finder polls it (SMART Scheduling Links).

No token: the manifest, then every file it names; each line must be valid R4
JSON, only what the clinic tagged public may appear, and a `_since` poll from
the manifest's transactionTime must bring exactly what changed (a booking,
new Slots). Setup writes go through the API with a clinic token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.publishing.extensions import (
    BOOKING_DEEP_LINK,
    BOOKING_PHONE,
    BOOKING_REFERRAL,
    SLOT_CAPACITY,
)
from fhir_server.publishing.public import PUBLIC_TAG
from fhir_server.scheduling import extensions as ext
from fhir_server.settings import Settings
from tests.fhir_conformance import problems
from tests.integration.auth_helpers import BASE, auth_app, mint, new_patient
from tests.integration.scheduling_setup import hours_from_now, make_slot, post

PHONE = "+1-555-0100"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for app_client in auth_app(settings_factory, publish_max_age=120):
        app_client.headers["Authorization"] = f"Bearer {mint(app_client, 'system/*.cruds')}"
        yield app_client


def anonymous(client: TestClient, url: str) -> Any:
    """A GET with no Authorization header, as a slot finder sends it."""
    token = client.headers.pop("Authorization", None)
    try:
        return client.get(url)
    finally:
        if token is not None:
            client.headers["Authorization"] = token


def site(client: TestClient, name: str, public: bool) -> dict[str, str]:
    meta = {"meta": {"tag": [PUBLIC_TAG]}} if public else {}
    location = post(
        client,
        {
            "resourceType": "Location",
            **meta,
            "name": name,
            "extension": [{"url": ext.TIMEZONE, "valueCode": "Europe/Paris"}],
            "telecom": [{"system": "phone", "value": PHONE}],
        },
    )
    schedule = post(
        client,
        {
            "resourceType": "Schedule",
            **meta,
            "active": True,
            "comment": f"zq-internal-note-{name}",
            "actor": [{"reference": f"Location/{location['id']}", "display": "Front room"}],
        },
    )
    return {"location": location["id"], "schedule": schedule["id"]}


def poll(client: TestClient, since: str | None = None) -> tuple[dict[str, Any], dict[str, list]]:
    """The manifest and the parsed lines of each file it names."""
    url = f"{BASE}/$bulk-publish" + (f"?_since={since}" if since else "")
    answer = anonymous(client, url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "public, max-age=120"
    manifest = answer.json()
    files: dict[str, list[dict[str, Any]]] = {}
    for output in manifest["output"]:
        assert urlsplit(output["url"]).netloc == "testserver"
        fetched = anonymous(client, output["url"])
        assert fetched.status_code == 200, fetched.text
        assert fetched.headers["content-type"].startswith("application/fhir+ndjson")
        assert fetched.headers["cache-control"] == "public, max-age=120"
        lines = [json.loads(line) for line in fetched.text.splitlines()]
        for line in lines:
            assert line["resourceType"] == output["type"]
            assert problems(line) == [], line
        files[output["type"]] = lines
    return manifest, files


def ids(lines: list[dict[str, Any]]) -> set[str]:
    return {line["id"] for line in lines}


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, Any]:
    public, private = site(client, "Open", True), site(client, "Closed", False)
    start = hours_from_now(48)
    return {
        "public": public,
        "private": private,
        "free": make_slot(client, public["schedule"], start),
        "hidden": make_slot(client, private["schedule"], start),
        "past": make_slot(client, public["schedule"], hours_from_now(-48)),
        "held": make_slot(client, public["schedule"], start + timedelta(hours=1), status="busy"),
    }


def test_the_manifest_and_files_publish_only_public_future_availability(
    client: TestClient, world: dict[str, Any]
) -> None:
    manifest, files = poll(client)
    assert manifest["request"] == f"{BASE}/$bulk-publish"
    assert [o["type"] for o in manifest["output"]] == ["Location", "Schedule", "Slot"]
    assert manifest["error"] == []
    public, private = world["public"], world["private"]
    assert public["location"] in ids(files["Location"])
    assert private["location"] not in ids(files["Location"])
    assert ids(files["Schedule"]) >= {public["schedule"]}
    assert private["schedule"] not in ids(files["Schedule"])
    slots = {line["id"]: line for line in files["Slot"]}
    assert world["free"]["id"] in slots and world["held"]["id"] in slots
    assert world["hidden"]["id"] not in slots and world["past"]["id"] not in slots
    text = json.dumps(files)
    assert "zq-internal-note" not in text and "Front room" not in text  # comments, displays
    free = slots[world["free"]["id"]]
    extensions = {e["url"]: e for e in free["extension"]}
    link = f"http://testserver/portal/book?slot={free['id']}"
    assert extensions[BOOKING_DEEP_LINK]["valueUrl"] == link
    assert extensions[BOOKING_PHONE]["valueString"] == PHONE
    assert extensions[SLOT_CAPACITY]["valueInteger"] == 1
    assert slots[world["held"]["id"]]["status"] == "busy"
    assert "extension" not in slots[world["held"]["id"]]


def test_a_since_poll_brings_what_changed_a_booking_and_new_slots(
    client: TestClient, world: dict[str, Any]
) -> None:
    # Past the manifest's settle margin (2 s, on an instant to the second): the setup is
    # older than the first poll's transactionTime.
    time.sleep(3.5)
    first, _ = poll(client)
    since = first["transactionTime"]
    time.sleep(2.5)
    patient = new_patient(client, "Finder")
    free = world["free"]
    referral = {"url": BOOKING_REFERRAL, "valueString": "slot-finder-7"}
    proposal = {
        "resourceType": "Appointment",
        "status": "proposed",
        "extension": [referral],
        "start": free["start"],
        "end": free["end"],
        "slot": [{"reference": f"Slot/{free['id']}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "needs-action"}],
    }
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "appt-resource", "resource": proposal}],
    }
    booked = client.post(f"{BASE}/Appointment/$book", json=body)
    assert booked.status_code == 200, booked.text
    appointment = booked.json()["entry"][0]["resource"]
    assert referral in appointment["extension"]  # the source round trip, kept as booked
    added = make_slot(client, world["public"]["schedule"], hours_from_now(96))
    make_slot(client, world["private"]["schedule"], hours_from_now(96))

    later, files = poll(client, since)
    assert later["request"] == f"{BASE}/$bulk-publish?_since={since}"
    assert later["transactionTime"] > since
    slots = {line["id"]: line for line in files["Slot"]}
    assert set(slots) == {free["id"], added["id"]}
    assert slots[free["id"]]["status"] == "busy"
    assert slots[added["id"]]["status"] == "free"
    assert files["Location"] == [] and files["Schedule"] == []


def test_a_token_changes_nothing_and_bad_input_is_an_operation_outcome(
    client: TestClient, world: dict[str, Any]
) -> None:
    with_token = client.get(f"{BASE}/$bulk-publish")
    assert with_token.status_code == 200
    hidden = world["hidden"]["id"]
    assert hidden not in client.get(f"{BASE}/$bulk-publish/Slot.ndjson").text
    bad = anonymous(client, f"{BASE}/$bulk-publish?_since=yesterday")
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"
    bad_file = anonymous(client, f"{BASE}/$bulk-publish/Slot.ndjson?_since=yesterday")
    assert bad_file.status_code == 400
    assert client.post(f"{BASE}/$bulk-publish").status_code == 405
    unknown = anonymous(client, f"{BASE}/$bulk-publish/Patient.ndjson")
    assert unknown.status_code == 404
    statement = anonymous(client, f"{BASE}/metadata").json()
    names = [o["name"] for o in statement["rest"][0].get("operation", [])]
    assert "bulk-publish" in names


def test_with_auth_off_the_files_still_hold_only_what_is_public(
    settings_factory: Callable[..., Settings],
) -> None:
    """No gate runs when auth is off (local development); the public caller's read limits
    still narrow every query, so nothing unpublished leaves."""
    with TestClient(create_app(settings_factory(publish_max_age=120))) as open_client:
        public, private = site(open_client, "Open", True), site(open_client, "Closed", False)
        shown = make_slot(open_client, public["schedule"], hours_from_now(30))
        hidden = make_slot(open_client, private["schedule"], hours_from_now(30))
        _, files = poll(open_client)
    assert ids(files["Slot"]) == {shown["id"]} and hidden["id"] not in json.dumps(files)
    assert ids(files["Location"]) == {public["location"]}
    assert ids(files["Schedule"]) == {public["schedule"]}
