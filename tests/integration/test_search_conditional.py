"""Conditional create/update/delete find their target through search; and the capability entries."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.conftest import patient
from tests.integration.rest_support import JSON_HEADERS, assert_outcome
from tests.integration.search_support import TEST_SYSTEM, ids, marker, search, tagged


def _post(client: TestClient, body: dict[str, Any], condition: str) -> Any:
    headers = {**JSON_HEADERS, "if-none-exist": condition}
    return client.post("/fhir/Patient", content=orjson.dumps(body), headers=headers)


def test_conditional_create_matches_by_identifier(client: TestClient) -> None:
    mark = marker()
    identifier = [{"system": TEST_SYSTEM, "value": mark}]
    first = _post(client, patient(identifier=identifier), f"identifier={TEST_SYSTEM}|{mark}")
    assert first.status_code == 201
    again = _post(client, patient(identifier=identifier), f"identifier={TEST_SYSTEM}|{mark}")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    # A different system is a different identifier: a new resource.
    other = _post(client, patient(), f"identifier=urn:other|{mark}")
    assert other.status_code == 201


def test_conditional_create_with_accents_and_dates(client: TestClient) -> None:
    mark = marker()
    tagged(client, mark, patient("Ñúñez", birthDate="1970-01"))
    condition = f"identifier={TEST_SYSTEM}|{mark}&family=nunez&birthdate=1970-01"
    assert _post(client, patient(), condition).status_code == 200
    condition = f"identifier={TEST_SYSTEM}|{mark}&family=nunez&birthdate=1970-01-15"
    assert _post(client, patient(), condition).status_code == 201


def test_conditional_create_with_two_matches_is_412(client: TestClient) -> None:
    mark = marker()
    tagged(client, mark, patient("Twin"))
    tagged(client, mark, patient("Twin"))
    response = _post(client, patient(), f"identifier={TEST_SYSTEM}|{mark}")
    assert_outcome(response, 412)


def test_conditional_create_refuses_unknown_parameters(client: TestClient) -> None:
    """A typo must not silently match everything (or nothing): 400 naming it."""
    response = _post(client, patient(), "identifer=urn:x|1")
    assert_outcome(response, 400, "identifer")
    assert_outcome(_post(client, patient(), "_count=1"), 400)
    assert_outcome(_post(client, patient(), "birthdate=1970-13"), 400, "birthdate")


def test_conditional_update(client: TestClient) -> None:
    mark = marker()
    existing = tagged(client, mark, patient("Before"))
    body = {**patient("After"), "identifier": existing["identifier"]}
    url = f"/fhir/Patient?identifier={TEST_SYSTEM}|{mark}"
    response = client.put(url, content=orjson.dumps(body), headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == existing["id"]
    assert ids(search(client, "Patient", "family=after", mark)) == [existing["id"]]
    fresh = marker()
    url = f"/fhir/Patient?identifier={TEST_SYSTEM}|{fresh}"
    created = client.put(url, content=orjson.dumps(patient("New")), headers=JSON_HEADERS)
    assert created.status_code == 201


def test_conditional_delete(client: TestClient) -> None:
    mark = marker()
    keep = tagged(client, mark, patient("Keep", gender="male"))
    drop = tagged(client, mark, patient("Drop", gender="female"))
    response = client.delete(f"/fhir/Patient?identifier={TEST_SYSTEM}|{mark}&gender=female")
    assert response.status_code == 200, response.text
    assert client.get(f"/fhir/Patient/{drop['id']}").status_code == 410
    assert client.get(f"/fhir/Patient/{keep['id']}").status_code == 200
    again = client.delete(f"/fhir/Patient?identifier={TEST_SYSTEM}|{mark}&gender=female")
    assert again.status_code == 204
    both = client.delete(f"/fhir/Patient?identifier={TEST_SYSTEM}|{mark}&gender=male,female")
    assert both.status_code == 200  # only "keep" is left to match
    assert client.get(f"/fhir/Patient/{keep['id']}").status_code == 410


def test_conditional_delete_with_several_matches_is_412(client: TestClient) -> None:
    mark = marker()
    first = tagged(client, mark, patient("Many"))
    tagged(client, mark, patient("Many"))
    response = client.delete(f"/fhir/Patient?identifier={TEST_SYSTEM}|{mark}")
    assert_outcome(response, 412)
    assert client.get(f"/fhir/Patient/{first['id']}").status_code == 200


def test_capability_lists_parameters_includes_and_revincludes(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    slot = resources["Slot"]
    params = {p["name"]: p for p in slot["searchParam"]}
    assert params["start"]["type"] == "date"
    assert params["schedule"]["type"] == "reference"
    assert params["schedule"]["definition"] == "http://hl7.org/fhir/SearchParameter/Slot-schedule"
    assert {"status", "service-type", "specialty", "appointment-type", "identifier", "_id"} <= set(
        params
    )
    assert "Slot:schedule" in slot["searchInclude"]
    assert "Appointment:slot" in slot["searchRevInclude"]
    appointment = resources["Appointment"]
    assert {"Appointment:patient", "Appointment:actor", "Appointment:slot"} <= set(
        appointment["searchInclude"]
    )
    assert any(
        p["name"] == "priority" and p["type"] == "number" for p in appointment["searchParam"]
    )
    assert "Schedule:actor" in resources["Practitioner"]["searchRevInclude"]
    for resource in resources.values():
        for param in resource.get("searchParam", []):
            assert param["type"] in {"string", "token", "reference", "date", "uri", "number"}
