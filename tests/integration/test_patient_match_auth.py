"""`Patient/$match` through the access gate: each caller is matched only against the
Patients it may read (a patient against itself, a practitioner against their patients)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, appointment, auth_app, bearer, create, mint

FHIR = {"Content-Type": "application/fhir+json"}
# Twins as the records hold them: the same family, birth date, phone and address.
FAMILY = {
    "name": [{"family": "Okonkwo", "given": ["Chidi"]}],
    "gender": "male",
    "birthDate": "1990-02-02",
    "telecom": [{"system": "phone", "value": "+234 803 555 0101"}],
}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, str]:
    chidi = create(client, {"resourceType": "Patient", **FAMILY})
    double = create(client, {"resourceType": "Patient", **FAMILY})  # a duplicate record
    create(client, appointment(chidi))  # with Practitioner/dr-1
    return {"chidi": chidi, "double": double}


def ask(client: TestClient, headers: dict[str, str], patient: dict[str, Any]) -> Any:
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": {"resourceType": "Patient", **patient}}],
    }
    return client.post(f"{BASE}/Patient/$match", json=body, headers=headers | FHIR)


def matched(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    entries = response.json().get("entry", [])
    return {e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"}


def test_the_front_desk_sees_every_candidate(client: TestClient, world: dict[str, str]) -> None:
    headers = bearer(mint(client, "user/*.cruds", role="frontdesk"))
    assert matched(ask(client, headers, FAMILY)) == {world["chidi"], world["double"]}


def test_a_practitioner_is_matched_against_their_own_patients_only(
    client: TestClient, world: dict[str, str]
) -> None:
    me = "Practitioner/dr-1"
    headers = bearer(mint(client, "user/*.cruds", fhir_user=me, role="practitioner"))
    assert matched(ask(client, headers, FAMILY)) == {world["chidi"]}


def test_a_patient_token_sees_at_most_itself(client: TestClient, world: dict[str, str]) -> None:
    chidi = world["chidi"]
    token = mint(
        client, "patient/*.cruds", patient=chidi, fhir_user=f"Patient/{chidi}", role="patient"
    )
    response = ask(client, bearer(token), {"id": chidi, **FAMILY})
    assert matched(response) == {chidi}
    assert world["double"] not in response.text
    # Matching someone else's record is refused before anything is searched.
    other = ask(client, bearer(token), {"id": world["double"], **FAMILY})
    assert other.status_code in (403, 404)
    assert world["double"] not in other.text.replace(f"Patient/{world['double']}", "")


def test_a_token_that_cannot_read_patients_cannot_match(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = bearer(mint(client, "system/Slot.rs system/Schedule.rs"))
    response = ask(client, headers, FAMILY)
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_only_certain_matches_counts_only_the_readable_candidates(
    client: TestClient, world: dict[str, str]
) -> None:
    """Both records are certain matches: the front desk, who reads both, gets neither;
    the practitioner, who reads one, gets it (the other is never looked at)."""
    only = {"name": "onlyCertainMatches", "valueBoolean": True}
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", **FAMILY}},
            only,
        ],
    }
    desk = bearer(mint(client, "user/*.cruds", role="frontdesk")) | FHIR
    me = "Practitioner/dr-1"
    doctor = bearer(mint(client, "user/*.cruds", fhir_user=me, role="practitioner")) | FHIR
    assert matched(client.post(f"{BASE}/Patient/$match", json=body, headers=desk)) == set()
    assert matched(client.post(f"{BASE}/Patient/$match", json=body, headers=doctor)) == {
        world["chidi"]
    }


def test_a_read_only_token_may_post_a_read_only_operation_but_not_a_writing_one(
    client: TestClient, world: dict[str, str]
) -> None:
    """`$match` says `affectsState: false`: POSTing it (its Parameters carry a resource)
    is a read, so `system/Patient.rs` is enough. `$hold` changes state: a read scope
    cannot invoke it, whatever the method."""
    reader = bearer(mint(client, "system/Patient.rs system/Slot.rs system/Appointment.rs"))
    assert matched(ask(client, reader, FAMILY)) == {world["chidi"], world["double"]}
    held = client.post(
        f"{BASE}/Appointment/$hold",
        json={"resourceType": "Parameters", "parameter": []},
        headers=reader | FHIR,
    )
    assert held.status_code == 403, held.text
    assert held.json()["resourceType"] == "OperationOutcome"
