"""R4 JSON has no empty arrays or objects: not in what the server answers, nor in what it
stores. (Every response of every test also passes `tests/fhir_conformance.py`.)"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import FHIR_JSON, patient
from tests.fhir_conformance import problems

HEADERS = {"Content-Type": FHIR_JSON}


def test_the_checker_refuses_what_a_strict_reader_refuses() -> None:
    assert problems({"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert problems({"resourceType": "Patient", "name": [{"family": "X", "given": []}]})
    assert problems({"resourceType": "Patient", "address": [{}]})
    assert problems({"resourceType": "Patient", "nickname": "not an R4 element"})
    assert problems({"resourceType": "Bundle", "type": "searchset", "total": 0}) == []


def test_a_search_with_no_match_has_no_entry(client: TestClient) -> None:
    query = {"family": "nobody-has-this-name", "_total": "accurate"}
    found = client.get("/fhir/Patient", params=query)
    assert found.status_code == 200
    body = found.json()
    assert body["total"] == 0 and "entry" not in body
    counted = client.get("/fhir/Patient", params={"_summary": "count", "family": "x"}).json()
    assert "entry" not in counted


def test_empty_history_and_batch_have_no_entry(client: TestClient) -> None:
    assert "entry" not in client.get("/fhir/Slot/_history").json()
    batch = client.post("/fhir", json={"resourceType": "Bundle", "type": "batch"}, headers=HEADERS)
    assert batch.status_code == 200 and "entry" not in batch.json()


def test_an_empty_object_is_refused_and_nothing_is_stored(client: TestClient) -> None:
    query = {"family": "Emptyobject", "_total": "accurate"}
    before = client.get("/fhir/Patient", params=query).json()["total"]
    sent = client.post(
        "/fhir/Patient", json=patient(family="Emptyobject", address=[{}]), headers=HEADERS
    )
    assert sent.status_code == 422
    assert "Patient.address[0]" in sent.text
    bare = client.post(
        "/fhir/Patient", json=patient(family="Emptyobject", maritalStatus={}), headers=HEADERS
    )
    assert bare.status_code == 422
    assert client.get("/fhir/Patient", params=query).json()["total"] == before
