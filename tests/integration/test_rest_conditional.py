"""Conditional reads (If-None-Match, If-Modified-Since) and `Prefer: return=`."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import patient
from tests.integration.rest_support import JSON_HEADERS, assert_outcome, create, put


def test_if_none_match_current_etag_is_304(client: TestClient) -> None:
    created = create(client)
    url = f"/fhir/Patient/{created['id']}"
    response = client.get(url, headers={"if-none-match": 'W/"1"'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'


def test_if_none_match_old_etag_is_200(client: TestClient) -> None:
    created = create(client)
    put(client, {**created, "gender": "male"})
    response = client.get(f"/fhir/Patient/{created['id']}", headers={"if-none-match": 'W/"1"'})
    assert response.status_code == 200
    assert response.json()["gender"] == "male"


def test_if_modified_since(client: TestClient) -> None:
    created = create(client)
    url = f"/fhir/Patient/{created['id']}"
    last_modified = client.get(url).headers["last-modified"]
    assert client.get(url, headers={"if-modified-since": last_modified}).status_code == 304
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(url, headers={"if-modified-since": earlier}).status_code == 200
    assert client.get(url, headers={"if-modified-since": "garbage"}).status_code == 200


def test_stale_if_match_on_update_as_create_is_412(client: TestClient) -> None:
    response = put(client, patient(id="if-match-new"), **{"if-match": 'W/"1"'})
    assert_outcome(response, 412)
    assert_outcome(client.get("/fhir/Patient/if-match-new"), 404)


def test_malformed_if_match_is_400(client: TestClient) -> None:
    created = create(client)
    response = put(client, created, **{"if-match": "three"})
    assert_outcome(response, 400, "header:If-Match")


def _create_with_prefer(client: TestClient, prefer: str) -> tuple[int, bytes, dict[str, str]]:
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps(patient()),
        headers={**JSON_HEADERS, "prefer": prefer},
    )
    return response.status_code, response.content, dict(response.headers)


def test_prefer_return_minimal(client: TestClient) -> None:
    status, content, headers = _create_with_prefer(client, "return=minimal")
    assert status == 201
    assert content == b""
    assert "location" in headers and headers["etag"] == 'W/"1"'


def test_prefer_return_operation_outcome(client: TestClient) -> None:
    status, content, headers = _create_with_prefer(client, "return=OperationOutcome")
    assert status == 201
    assert orjson.loads(content)["resourceType"] == "OperationOutcome"
    assert "location" in headers


@pytest.mark.parametrize("prefer", ["return=representation", "", "handling=strict"])
def test_prefer_return_representation_is_default(client: TestClient, prefer: str) -> None:
    status, content, _ = _create_with_prefer(client, prefer)
    assert status == 201
    assert orjson.loads(content)["resourceType"] == "Patient"


def test_prefer_applies_to_update_and_patch(client: TestClient) -> None:
    created = create(client)
    minimal = put(client, {**created, "gender": "male"}, prefer="return=minimal")
    assert minimal.status_code == 200 and minimal.content == b""
    patched = client.patch(
        f"/fhir/Patient/{created['id']}",
        content=orjson.dumps([{"op": "replace", "path": "/gender", "value": "female"}]),
        headers={"content-type": "application/json-patch+json", "prefer": "return=minimal"},
    )
    assert patched.status_code == 200 and patched.content == b""
    assert patched.headers["etag"] == 'W/"3"'


def test_conditional_create_returns_the_match(client: TestClient) -> None:
    existing = create(client)
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps(patient(family="Other")),
        headers={**JSON_HEADERS, "if-none-exist": f"_id={existing['id']}"},
    )
    assert response.status_code == 200
    assert response.json()["id"] == existing["id"]
    assert response.json()["name"] == existing["name"]
    fresh = client.post(
        "/fhir/Patient",
        content=orjson.dumps(patient()),
        headers={**JSON_HEADERS, "if-none-exist": "_id=no-such-patient"},
    )
    assert fresh.status_code == 201


def test_conditional_update_and_delete_by_criteria(client: TestClient) -> None:
    existing = create(client)
    changed = {k: v for k, v in existing.items() if k != "id"} | {"gender": "male"}
    response = client.put(
        "/fhir/Patient",
        params={"_id": existing["id"], "_format": "json"},
        content=orjson.dumps(changed),
        headers=JSON_HEADERS,
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == existing["id"]
    assert response.json()["meta"]["versionId"] == "2"
    missing = client.put(
        "/fhir/Patient",
        params={"_id": "nobody-yet"},
        content=orjson.dumps(patient()),
        headers=JSON_HEADERS,
    )
    assert missing.status_code == 201
    deleted = client.delete("/fhir/Patient", params={"_id": existing["id"]})
    assert deleted.status_code == 200
    assert client.get(f"/fhir/Patient/{existing['id']}").status_code == 410
    assert client.delete("/fhir/Patient", params={"_id": "nobody"}).status_code == 204


def test_conditional_update_without_criteria_is_400(client: TestClient) -> None:
    response = client.put("/fhir/Patient", content=orjson.dumps(patient()), headers=JSON_HEADERS)
    assert_outcome(response, 400)
