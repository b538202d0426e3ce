"""Batch and transaction Bundles: independence, atomicity, urn:uuid references, order."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import patient
from tests.integration.rest_support import (
    JSON_HEADERS,
    appointment,
    assert_outcome,
    binary_patch,
    both_modes_client,
    create,
    store_state,
)

URN_PATIENT = "urn:uuid:7f7a1c52-0d1e-4b5c-9b1e-0a0000000001"


client = both_modes_client


def _post(client: TestClient, kind: str, entries: list[Any]) -> Response:
    body = {"resourceType": "Bundle", "type": kind, "entry": entries}
    response: Response = client.post("/fhir", content=orjson.dumps(body), headers=JSON_HEADERS)
    return response


def _entry(
    method: str,
    url: str,
    resource: dict[str, Any] | None = None,
    *,
    full_url: str | None = None,
    **request_fields: str,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"request": {"method": method, "url": url, **request_fields}}
    if full_url is not None:
        entry["fullUrl"] = full_url
    if resource is not None:
        entry["resource"] = resource
    return entry


def _history_total(client: TestClient) -> int:
    total: int = client.get("/fhir/_history?_count=1").json()["total"]
    return total


def test_batch_entries_succeed_or_fail_independently(client: TestClient) -> None:
    existing = create(client)
    response = _post(
        client,
        "batch",
        [
            _entry("POST", "Patient", patient(family="Batch")),
            _entry("GET", f"Patient/{existing['id']}"),
            _entry("POST", "Patient", {**patient(), "gender": "bogus"}),
            _entry("GET", "Patient/not-there"),
            _entry("DELETE", f"Patient/{existing['id']}"),
            {"request": {"method": "GET"}},
        ],
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == [
        "201 Created",
        "200 OK",
        "422 Unprocessable Entity",
        "404 Not Found",
        "200 OK",
        "400 Bad Request",
    ]
    assert result["entry"][4]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    created = result["entry"][0]
    assert created["resource"]["name"][0]["family"] == "Batch"
    assert created["response"]["location"].endswith("/_history/1")
    assert created["response"]["etag"] == 'W/"1"'
    failed = result["entry"][2]["response"]["outcome"]
    assert failed["resourceType"] == "OperationOutcome"
    assert failed["issue"][0]["expression"] == ["Patient.gender"]
    assert result["entry"][3]["response"]["outcome"]["issue"][0]["code"] == "not-found"
    new_id = created["resource"]["id"]
    assert client.get(f"/fhir/Patient/{new_id}").status_code == 200
    assert client.get(f"/fhir/Patient/{existing['id']}").status_code == 410


def test_transaction_resolves_urn_uuid_references(client: TestClient) -> None:
    linked = appointment(
        participant=[{"actor": {"reference": URN_PATIENT}, "status": "accepted"}],
    )
    response = _post(
        client,
        "transaction",
        [
            _entry("POST", "Appointment", linked),
            _entry("POST", "Patient", patient(family="Urn"), full_url=URN_PATIENT),
        ],
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    patient_id = result["entry"][1]["resource"]["id"]
    reference = result["entry"][0]["resource"]["participant"][0]["actor"]["reference"]
    assert reference == f"Patient/{patient_id}"
    stored = client.get(f"/fhir/Appointment/{result['entry'][0]['resource']['id']}").json()
    assert stored["participant"][0]["actor"]["reference"] == f"Patient/{patient_id}"


def test_transaction_processes_delete_post_put_get_in_order(client: TestClient) -> None:
    target = create(client)
    doomed = create(client)
    url = f"Patient/{target['id']}"
    response = _post(
        client,
        "transaction",
        [
            _entry("GET", url),
            _entry("PUT", url, {**target, "gender": "male"}),
            _entry("POST", "Patient", patient(family="Order")),
            _entry("DELETE", f"Patient/{doomed['id']}"),
        ],
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["resource"]["gender"] == "male", "GET runs after the PUT"
    assert entries[0]["resource"]["meta"]["versionId"] == "2"
    deleted_at = client.get(f"/fhir/Patient/{doomed['id']}/_history").json()["entry"][0]
    posted_at = entries[2]["resource"]["meta"]["lastUpdated"]
    put_at = entries[1]["resource"]["meta"]["lastUpdated"]
    assert deleted_at["response"]["lastModified"] <= posted_at <= put_at


def test_transaction_patch_entry_as_binary(client: TestClient) -> None:
    target = create(client)
    ops = [{"op": "replace", "path": "/gender", "value": "other"}]
    response = _post(
        client, "transaction", [_entry("PATCH", f"Patient/{target['id']}", binary_patch(ops))]
    )
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["gender"] == "other"
    assert client.get(f"/fhir/Patient/{target['id']}").json()["gender"] == "other"


def test_failed_transaction_leaves_no_trace(client: TestClient) -> None:
    target = create(client)
    doomed = create(client)
    other = create(client)
    before = store_state(client)
    history_before = _history_total(client)
    response = _post(
        client,
        "transaction",
        [
            _entry("DELETE", f"Patient/{doomed['id']}"),
            _entry("POST", "Patient", patient(family="Ghost"), full_url=URN_PATIENT),
            _entry("PUT", f"Patient/{target['id']}", {**target, "gender": "male"}),
            _entry(
                "PATCH",
                f"Patient/{other['id']}",
                binary_patch([{"op": "replace", "path": "/gender", "value": "bogus"}]),
            ),
        ],
    )
    assert_outcome(response, 422, "Patient.gender")
    assert "Entry 3" in response.json()["issue"][0]["diagnostics"]
    assert store_state(client) == before
    assert _history_total(client) == history_before
    assert client.get(f"/fhir/Patient/{doomed['id']}").status_code == 200


def test_failed_transaction_on_stale_if_match_or_missing_target(client: TestClient) -> None:
    target = create(client)
    before = store_state(client)
    stale = _post(
        client,
        "transaction",
        [
            _entry("POST", "Patient", patient()),
            _entry("PUT", f"Patient/{target['id']}", target, ifMatch='W/"4"'),
        ],
    )
    assert_outcome(stale, 412)
    missing = _post(
        client,
        "transaction",
        [_entry("POST", "Patient", patient()), _entry("DELETE", "Patient/nobody-here")],
    )
    assert_outcome(missing, 404)
    assert store_state(client) == before


def test_malformed_bundles_are_400_and_write_nothing(client: TestClient) -> None:
    before = store_state(client)
    no_request = _post(client, "transaction", [{"resource": patient()}])
    assert_outcome(no_request, 400, "Bundle.entry[0].request")
    bad_method = _post(client, "transaction", [_entry("TRACE", "Patient")])
    assert_outcome(bad_method, 400, "Bundle.entry[0].request.method")
    bad_patch = _post(client, "transaction", [_entry("PATCH", "Patient/x", patient())])
    assert_outcome(bad_patch, 400, "Bundle.entry[0].request")
    not_base64 = {"resourceType": "Binary", "contentType": "application/json-patch+json"}
    for data in (5, "%%%", "bm90IGpzb24="):
        binary = _entry("PATCH", "Patient/x", {**not_base64, "data": data})
        assert_outcome(_post(client, "transaction", [binary]), 400, "Bundle.entry[0].request")
    not_an_entry = _post(client, "transaction", ["Patient"])
    assert_outcome(not_an_entry, 400, "Bundle.entry[0].request")
    wrong_type = _post(client, "collection", [])
    assert_outcome(wrong_type, 400, "Bundle.type")
    not_bundle = client.post("/fhir", content=orjson.dumps(patient()), headers=JSON_HEADERS)
    assert_outcome(not_bundle, 400, "resourceType")
    assert store_state(client) == before


def test_empty_transaction_is_fine(client: TestClient) -> None:
    response = _post(client, "transaction", [])
    assert response.status_code == 200
    assert "entry" not in response.json()  # R4 JSON has no empty arrays


def test_transaction_writing_one_resource_twice_is_400(client: TestClient) -> None:
    target = create(client)
    before = store_state(client)
    url = f"Patient/{target['id']}"
    response = _post(
        client,
        "transaction",
        [_entry("PUT", url, {**target, "gender": "male"}), _entry("DELETE", url)],
    )
    assert_outcome(response, 400, "Bundle.entry[1].request.url")
    assert store_state(client) == before


def test_batch_with_odd_entries_reports_each(client: TestClient) -> None:
    response = _post(client, "batch", ["nonsense", _entry("GET", "Patient/x", ifMatch="5")])
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["400 Bad Request", "404 Not Found"]


def test_transaction_conditional_create_resolves_urn_to_the_match(client: TestClient) -> None:
    existing = create(client)
    linked = appointment(participant=[{"actor": {"reference": URN_PATIENT}, "status": "accepted"}])
    history_before = _history_total(client)
    response = _post(
        client,
        "transaction",
        [
            _entry("POST", "Patient", patient(), full_url=URN_PATIENT,
                   ifNoneExist=f"_id={existing['id']}"),
            _entry("POST", "Appointment", linked),
        ],
    )  # fmt: skip
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    assert entries[0]["resource"]["id"] == existing["id"]
    reference = entries[1]["resource"]["participant"][0]["actor"]["reference"]
    assert reference == f"Patient/{existing['id']}"
    assert _history_total(client) == history_before + 1
