"""Conditional creates of a Patient never make a duplicate of a certain `$match`.

An EHR sends `POST Patient` with `If-None-Exist` on its own identifier; when
that finds nothing but the clinic already holds the same person (registered
through the portal, without the EHR's identifier), the answer is the one a
found match gets: 200 with the stored Patient, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.integration.rest_support import JSON_HEADERS, store_state

EHR = "urn:oid:2.16.840.1.113883.19.7"
STORED = {
    "resourceType": "Patient",
    "name": [{"family": "Łukasiewicz", "given": ["Zoë"]}],
    "gender": "female",
    "birthDate": "1988-06-30",
    "telecom": [{"system": "phone", "value": "+44 20 7946 0958"}],
}
# The same person as the EHR writes her: no diacritics, a national phone format, its MRN.
FROM_EHR = {
    "resourceType": "Patient",
    "identifier": [{"system": EHR, "value": "E-1001"}],
    "name": [{"family": "LUKASIEWICZ", "given": ["Zoe"]}],
    "gender": "female",
    "birthDate": "1988-06-30",
    "telecom": [{"system": "phone", "value": "020 7946 0958"}],
}
CONDITION = {**JSON_HEADERS, "If-None-Exist": f"identifier={EHR}|E-1001"}


@pytest.fixture()
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory()), raise_server_exceptions=False) as test:
        yield test


def stored(client: TestClient, body: dict[str, Any] = STORED) -> str:
    response = client.post("/fhir/Patient", json=body, headers=JSON_HEADERS)
    assert response.status_code == 201
    return str(response.json()["id"])


def patient_ids(client: TestClient) -> list[str]:
    bundle = client.get("/fhir/Patient?_count=100").json()
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


def test_a_certain_match_is_answered_as_found_and_nothing_is_written(client: TestClient) -> None:
    existing = stored(client)
    before = store_state(client)
    response = client.post("/fhir/Patient", json=FROM_EHR, headers=CONDITION)
    assert response.status_code == 200
    assert response.json()["id"] == existing
    assert response.headers["Content-Location"].endswith(f"/Patient/{existing}/_history/1")
    assert store_state(client) == before


def test_a_probable_match_is_created(client: TestClient) -> None:
    existing = stored(client)
    swapped = {**FROM_EHR, "name": [{"family": "Zoe", "given": ["Lukasiewicz"]}]}
    response = client.post("/fhir/Patient", json=swapped, headers=CONDITION)
    assert response.status_code == 201
    assert patient_ids(client) == sorted([existing, response.json()["id"]])


def test_a_plain_create_is_an_explicit_create(client: TestClient) -> None:
    existing = stored(client)
    response = client.post("/fhir/Patient", json=FROM_EHR, headers=JSON_HEADERS)
    assert response.status_code == 201
    assert response.json()["id"] != existing


def test_several_certain_matches_refuse_the_create(client: TestClient) -> None:
    stored(client)
    stored(client)
    before = store_state(client)
    response = client.post("/fhir/Patient", json=FROM_EHR, headers=CONDITION)
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"
    assert store_state(client) == before


def test_a_transaction_s_conditional_create_resolves_to_the_certain_match(
    client: TestClient,
) -> None:
    existing = stored(client)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f4a8a2e-0000-4000-8000-000000000001",
                "resource": FROM_EHR,
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={EHR}|E-1001",
                },
            }
        ],
    }
    response = client.post("/fhir", json=transaction, headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    (entry,) = response.json()["entry"]
    assert entry["response"]["status"].startswith("200")
    assert patient_ids(client) == [existing]


def test_an_invalid_patient_in_a_transaction_is_still_refused_as_invalid(
    client: TestClient,
) -> None:
    stored(client)
    before = store_state(client)
    invalid = {**FROM_EHR, "birthDate": "1988-13-45"}
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": invalid,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x|y"},
            }
        ],
    }
    response = client.post("/fhir", json=transaction, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    assert store_state(client) == before
