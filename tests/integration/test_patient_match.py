"""`Patient/$match` on a seeded set of near-duplicates, against hand-written grades.

The seeded Patients are written through the API (so they are indexed like any
other); each case gives the Patient an EHR would send and the grade a person
reading the two records would give each stored one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.integration.rest_support import JSON_HEADERS, store_state

MRN = "urn:oid:2.16.840.1.113883.19.5"
GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"

SEEDED: dict[str, dict[str, Any]] = {
    "jose": {
        "name": [{"family": "Müller", "given": ["José"]}],
        "gender": "male",
        "birthDate": "1980-03-14",
        "telecom": [
            {"system": "phone", "value": "+33 6 12 34 56 78"},
            {"system": "email", "value": "jose.muller@example.org"},
        ],
        "address": [{"line": ["12 rue de la Paix"], "postalCode": "75002"}],
    },
    "jose-sister": {
        "name": [{"family": "Müller", "given": ["Ana"]}],
        "gender": "female",
        "birthDate": "1984-07-01",
        "telecom": [{"system": "phone", "value": "+33 6 12 34 56 78"}],
        "address": [{"line": ["12 rue de la Paix"], "postalCode": "75002"}],
    },
    "wei": {
        "identifier": [{"system": MRN, "value": "MRN-0042"}],
        "name": [{"family": "Zhang", "given": ["Wei"]}],
        "gender": "female",
        "birthDate": "1975-11-02",
        "telecom": [{"system": "phone", "value": "(555) 201-3344"}],
    },
    "smith": {
        "identifier": [{"system": MRN, "value": "MRN-0077"}],
        "name": [{"family": "Smith", "given": ["Jonathan"]}],
        "gender": "male",
        "birthDate": "1969-05-20",
    },
    "other-smith": {
        "name": [{"family": "Smith", "given": ["Jonathan"]}],
        "gender": "male",
        "birthDate": "1992-01-09",
    },
}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory()), raise_server_exceptions=False) as test:
        yield test


@pytest.fixture(scope="module")
def ids(client: TestClient) -> dict[str, str]:
    out = {}
    for key, body in SEEDED.items():
        response = client.post(
            "/fhir/Patient", json={"resourceType": "Patient", **body}, headers=JSON_HEADERS
        )
        assert response.status_code == 201
        out[key] = response.json()["id"]
    return out


def parameters(patient: dict[str, Any], **more: bool | int) -> dict[str, Any]:
    """A $match Parameters body: the Patient, and boolean or integer inputs."""
    extra = [
        {"name": name, "valueBoolean" if isinstance(v, bool) else "valueInteger": v}
        for name, v in more.items()
    ]
    resource = {"resourceType": "Patient", **patient}
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": resource}, *extra],
    }


def match(client: TestClient, patient: dict[str, Any], **more: bool | int) -> dict[str, Any]:
    response = client.post(
        "/fhir/Patient/$match", json=parameters(patient, **more), headers=JSON_HEADERS
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "searchset"
    return body


def grades(body: dict[str, Any], ids: dict[str, str]) -> dict[str, str]:
    """Seeded key -> grade of every match entry."""
    names = {v: k for k, v in ids.items()}
    out = {}
    for entry in body.get("entry", []):
        if entry["search"]["mode"] != "match":
            continue
        (grade,) = [e["valueCode"] for e in entry["search"]["extension"] if e["url"] == GRADE]
        out[names[entry["resource"]["id"]]] = grade
    return out


CASES = [
    pytest.param(
        {
            "name": [{"family": "MULLER", "given": ["Jose"]}],
            "gender": "male",
            "birthDate": "1980-03-14",
            "telecom": [{"system": "phone", "value": "06.12.34.56.78"}],
        },
        {"jose": "certain"},
        id="accents-case-and-phone-format",
    ),
    pytest.param(
        {
            "name": [{"family": "José", "given": ["Müller"]}],
            "gender": "male",
            "birthDate": "1980-03-14",
            "telecom": [{"system": "email", "value": "Jose.Muller@Example.org"}],
        },
        {"jose": "probable"},
        id="swapped-names",
    ),
    pytest.param(
        {"name": [{"family": "Mulelr", "given": ["Jose"]}], "birthDate": "1980-03-14"},
        {"jose": "possible"},
        id="typo-in-family-name",
    ),
    pytest.param(
        {
            "name": [{"family": "Zhang", "given": ["Wei"]}],
            "birthDate": "1975-11-02",
            "telecom": [{"system": "phone", "value": "+1 555-201-3344"}],
        },
        {"wei": "probable"},
        id="us-phone-with-country-code-but-no-gender",
    ),
    pytest.param(
        {"identifier": [{"system": MRN, "value": "MRN-0042"}], "name": [{"family": "Zang"}]},
        {"wei": "certain"},
        id="identifier-with-a-typo-in-the-name",
    ),
    pytest.param(
        {
            "identifier": [{"system": MRN, "value": "MRN-9999"}],
            "name": [{"family": "Smith", "given": ["Jonathan"]}],
            "gender": "male",
            "birthDate": "1969-05-20",
        },
        {"smith": "certainly-not"},
        id="same-demographics-other-mrn",
    ),
    pytest.param(
        {"name": [{"family": "Smith", "given": ["Jonathan"]}], "birthDate": "1992-01-09"},
        {"other-smith": "possible"},
        id="namesake-told-apart-by-birth-date",
    ),
    pytest.param(
        {"name": [{"family": "Nobody", "given": ["Known"]}], "birthDate": "2001-01-01"},
        {},
        id="no-match-is-an-empty-searchset",
    ),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_match_grades_the_seeded_near_duplicates(
    client: TestClient, ids: dict[str, str], given: dict[str, Any], expected: dict[str, str]
) -> None:
    body = match(client, given)
    assert grades(body, ids) == expected
    assert body["total"] == len(expected)


def test_entries_are_ordered_by_score_with_grade_and_mode(
    client: TestClient, ids: dict[str, str]
) -> None:
    body = match(client, {**SEEDED["jose"], "name": [{"family": "Muller", "given": ["Ana"]}]})
    scores = [e["search"]["score"] for e in body["entry"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert all(e["search"]["mode"] == "match" for e in body["entry"])
    # José shares more than the sister's name: birth date, phone, address, gender.
    assert grades(body, ids) == {"jose": "probable", "jose-sister": "possible"}
    assert [ids["jose"], ids["jose-sister"]] == [e["resource"]["id"] for e in body["entry"]]
    assert body["entry"][0]["fullUrl"].endswith(f"/Patient/{ids['jose']}")


def test_count_keeps_the_best(client: TestClient, ids: dict[str, str]) -> None:
    query = {**SEEDED["jose"], "name": [{"family": "Muller", "given": ["Ana"]}]}
    body = match(client, query, count=1)
    assert [e["resource"]["id"] for e in body["entry"]] == [ids["jose"]]


def test_only_certain_matches_returns_the_one_certain_match(
    client: TestClient, ids: dict[str, str]
) -> None:
    wei = {"identifier": [{"system": MRN, "value": "MRN-0042"}], **SEEDED["wei"]}
    assert grades(match(client, wei, onlyCertainMatches=True), ids) == {"wei": "certain"}
    probable_only = {k: v for k, v in SEEDED["wei"].items() if k != "identifier"}
    probable_only["name"] = [{"family": "Zhang", "given": ["Wie"]}]
    body = match(client, probable_only, onlyCertainMatches=True)
    assert body.get("entry") is None
    assert body["total"] == 0


def test_only_certain_matches_returns_none_when_several_are_certain(
    client: TestClient, ids: dict[str, str]
) -> None:
    twin = {**SEEDED["wei"], "identifier": [{"system": MRN, "value": "MRN-0043"}]}
    twin_id = client.post("/fhir/Patient", json={"resourceType": "Patient", **twin})
    both = {**SEEDED["wei"], "identifier": [*SEEDED["wei"]["identifier"], *twin["identifier"]]}
    assert len(match(client, both)["entry"]) == 2
    body = match(client, both, onlyCertainMatches=True)
    assert body["total"] == 0
    (note,) = body["entry"]
    assert note["search"]["mode"] == "outcome"
    assert note["resource"]["issue"][0]["code"] == "multiple-matches"
    client.delete(f"/fhir/Patient/{twin_id.json()['id']}")


def with_input(parameter: dict[str, Any]) -> dict[str, Any]:
    """A valid request for Wei with one more input parameter."""
    body = parameters(SEEDED["wei"])
    return {**body, "parameter": [*body["parameter"], parameter]}


BAD_INPUTS = [
    pytest.param({"resourceType": "Parameters", "parameter": []}, id="no-resource"),
    pytest.param(
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": {"resourceType": "Practitioner"}}],
        },
        id="not-a-patient",
    ),
    pytest.param(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "resource", "resource": {"resourceType": "Patient", "birthDate": "x"}}
            ],
        },
        id="invalid-patient",
    ),
    pytest.param(with_input({"name": "onlyCertainMatches", "valueString": "yes"}), id="yes"),
    pytest.param(with_input({"name": "onlyCertainMatches", "valueInteger": 1}), id="one"),
    pytest.param(with_input({"name": "count", "valueInteger": 0}), id="count-zero"),
    pytest.param(with_input({"name": "count", "valueString": "many"}), id="count-many"),
]


@pytest.mark.parametrize("body", BAD_INPUTS)
def test_bad_input_is_a_400_outcome_and_writes_nothing(
    client: TestClient, ids: dict[str, str], body: dict[str, Any]
) -> None:
    before = store_state(client)
    response = client.post("/fhir/Patient/$match", json=body, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert store_state(client) == before


def test_get_is_refused_with_a_400(client: TestClient) -> None:
    response = client.get("/fhir/Patient/$match")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_match_is_listed_in_the_capability_statement(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    (patient,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert {
        "name": "match",
        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
    } in patient["operation"]
    definition = client.get("/fhir/OperationDefinition/Patient-match").json()
    assert {p["name"] for p in definition["parameter"]} == {
        "resource",
        "onlyCertainMatches",
        "count",
        "return",
    }
