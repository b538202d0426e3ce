"""`/fhir/metadata` and the read-only conformance resources."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.structuredefinition import StructureDefinition

from fhir_server.fhir.datafiles import load_json_folder
from fhir_server.fhir.resource_types import SERVED_TYPES
from tests.integration.rest_support import assert_outcome, store_state


@pytest.fixture(scope="module")
def statement(client: TestClient) -> dict[str, Any]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _resources(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["type"]: r for r in statement["rest"][0]["resource"]}


def test_metadata_is_a_valid_capability_statement(statement: dict[str, Any]) -> None:
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert set(statement["format"]) == {"application/fhir+json", "application/json"}
    assert statement["patchFormat"] == ["application/json-patch+json"]


def test_metadata_lists_every_served_type_with_its_interactions(
    statement: dict[str, Any],
) -> None:
    resources = _resources(statement)
    assert set(SERVED_TYPES) <= set(resources)
    expected = {
        "read", "vread", "update", "patch", "delete",
        "history-instance", "history-type", "create", "search-type",
    }  # fmt: skip
    for rtype in SERVED_TYPES:
        assert {i["code"] for i in resources[rtype]["interaction"]} == expected
        assert resources[rtype]["versioning"] == "versioned-update"
        assert resources[rtype]["updateCreate"] is True
    system = {i["code"] for i in statement["rest"][0]["interaction"]}
    assert system == {"transaction", "batch", "history-system"}


def test_read_only_types_advertise_only_reads(statement: dict[str, Any]) -> None:
    resources = _resources(statement)
    for rtype in ("CodeSystem", "ValueSet", "StructureDefinition", "OperationDefinition"):
        assert {i["code"] for i in resources[rtype]["interaction"]} == {"read", "search-type"}


def test_advertised_id_search_works(client: TestClient, statement: dict[str, Any]) -> None:
    """`_id` is advertised for every served type and answers a searchset (search owns the rest)."""
    for rtype in SERVED_TYPES:
        names = {p["name"] for p in _resources(statement)[rtype].get("searchParam", [])}
        assert "_id" in names
        response = client.get(f"/fhir/{rtype}", params={"_id": "x"})
        assert response.status_code == 200, (rtype, response.text)
        assert response.json()["type"] == "searchset"


def test_metadata_supports_shaping(client: TestClient) -> None:
    assert b"\n  " in client.get("/fhir/metadata?_pretty=true").content
    assert client.head("/fhir/metadata").status_code == 200


def test_code_systems_and_value_sets_are_served(client: TestClient) -> None:
    found = client.get(
        "/fhir/ValueSet", params={"url": "http://hl7.org/fhir/ValueSet/appointmentstatus"}
    )
    assert found.status_code == 200
    entries = found.json()["entry"]
    assert len(entries) == 1
    rid = entries[0]["resource"]["id"]
    read = client.get(f"/fhir/ValueSet/{rid}")
    assert read.status_code == 200 and read.json()["url"].endswith("appointmentstatus")
    systems = client.get("/fhir/CodeSystem").json()
    assert {e["resource"]["resourceType"] for e in systems["entry"]} == {"CodeSystem"}
    assert len(systems["entry"]) >= 5
    assert_outcome(client.get("/fhir/CodeSystem/not-a-code-system"), 404)


@pytest.mark.parametrize("rtype", ["CodeSystem", "ValueSet"])
def test_all_terminology_is_served_and_valid(client: TestClient, rtype: str) -> None:
    packaged = {d["id"] for d in load_json_folder("terminology") if d.get("resourceType") == rtype}
    listed = client.get(f"/fhir/{rtype}").json()["entry"]
    assert {e["resource"]["id"] for e in listed} == packaged
    model = get_fhir_model_class(rtype)
    for entry in listed:
        model.model_validate(entry["resource"])


def test_structure_definitions_are_served(client: TestClient) -> None:
    """Every StructureDefinition in profiles/ is listed, readable and findable by url."""
    published = [
        d for d in load_json_folder("profiles") if d.get("resourceType") == "StructureDefinition"
    ]
    listed = client.get("/fhir/StructureDefinition").json()
    assert listed["type"] == "searchset"
    assert {e["resource"]["id"] for e in listed["entry"]} == {d["id"] for d in published}
    for definition in published:
        read = client.get(f"/fhir/StructureDefinition/{definition['id']}")
        assert read.status_code == 200
        StructureDefinition.model_validate(read.json())
        found = client.get("/fhir/StructureDefinition", params={"url": definition["url"]}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [definition["id"]]
    assert_outcome(client.get("/fhir/StructureDefinition/not-a-profile"), 404)


@pytest.mark.parametrize("rtype", ["CodeSystem", "ValueSet", "StructureDefinition"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_conformance_writes_are_405(client: TestClient, rtype: str, method: str) -> None:
    before = store_state(client)
    url = f"/fhir/{rtype}" if method == "POST" else f"/fhir/{rtype}/some-id"
    body = b"[]" if method == "PATCH" else b'{"resourceType": "%s"}' % rtype.encode()
    response = client.request(
        method, url, content=body, headers={"content-type": "application/fhir+json"}
    )
    assert_outcome(response, 405)
    assert store_state(client) == before
