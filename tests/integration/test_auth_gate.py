"""The access gate, leak by leak: each door the security review found, as a regression test.

Every test pairs the refused case with a control (a token that may see the data
gets it), so it fails if the data is simply not there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, auth_app, bearer, create, mint

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


def _appointment(patient: str, *practitioners: str, status: str = "booked") -> dict[str, Any]:
    actors = [f"Patient/{patient}", *(f"Practitioner/{p}" for p in practitioners)]
    return {
        "resourceType": "Appointment",
        "status": status,
        "description": "HIV follow-up",
        "start": "2030-01-02T09:00:00Z",
        "end": "2030-01-02T09:30:00Z",
        "participant": [{"actor": {"reference": a}, "status": "accepted"} for a in actors],
    }


def _slot(start: str) -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "status": "free",
        "schedule": {"reference": "Schedule/s"},
        "start": f"2030-02-0{start}T09:00:00Z",
        "end": f"2030-02-0{start}T09:30:00Z",
    }


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, str]:
    def patient(family: str, birthdate: str) -> str:
        return create(
            client,
            {"resourceType": "Patient", "name": [{"family": family}], "birthDate": birthdate},
        )

    def practitioner(family: str) -> str:
        return create(client, {"resourceType": "Practitioner", "name": [{"family": family}]})

    alice, bob = patient("Alison", "1985-05-05"), patient("Bobbington", "1990-01-01")
    shared, bobs_doctor = practitioner("Shared"), practitioner("OnlyBobs")
    for day in "123":
        create(client, _slot(day))
    return {
        "alice": alice,
        "bob": bob,
        "shared": shared,
        "bobs_doctor": bobs_doctor,
        "alice_appt": create(client, _appointment(alice, shared)),
        "bob_appt": create(client, _appointment(bob, shared, bobs_doctor)),
        "bob_cancelled": create(client, _appointment(bob, shared, status="cancelled")),
    }


def _alice(client: TestClient, world: dict[str, str]) -> dict[str, str]:
    return bearer(mint(client, "patient/*.cruds", patient=world["alice"]))


def _everyone(client: TestClient) -> dict[str, str]:
    return bearer(mint(client, "user/*.cruds", fhir_user="Practitioner/admin", role="admin"))


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", []) if "resource" in e}


def _found(client: TestClient, path: str, params: Any, headers: dict[str, str]) -> set[str]:
    """The ids a search answers (asserting it succeeded)."""
    return _ids(client.get(f"{BASE}/{path}", params=params, headers=headers))


def test_has_from_a_patient_token_is_evaluated_within_its_compartment(
    client: TestClient, world: dict[str, str]
) -> None:
    query = {"_has:Appointment:practitioner:patient.birthdate": "1990-01-01"}
    assert world["bobs_doctor"] in _found(client, "Practitioner", query, _everyone(client))
    assert _found(client, "Practitioner", query, _alice(client, world)) == set()
    by_patient = {"_has:Appointment:practitioner:patient": f"Patient/{world['bob']}"}
    found = client.get(f"{BASE}/Practitioner", params=by_patient, headers=_alice(client, world))
    assert _ids(found) == set()


def test_chain_into_a_type_the_token_cannot_read_is_refused(
    client: TestClient, world: dict[str, str]
) -> None:
    query = {"patient.birthdate": "1990-01-01"}
    assert world["bob_appt"] in _found(client, "Appointment", query, _everyone(client))
    no_patients = bearer(mint(client, "user/Appointment.rs"))
    refused = client.get(f"{BASE}/Appointment", params=query, headers=no_patients)
    assert refused.status_code == 403, refused.text
    assert "Bobbington" not in refused.text
    own = client.get(f"{BASE}/Appointment", params=query, headers=_alice(client, world))
    assert _ids(own) == set()  # Alice's birthdate differs: only her own Patient is chained


def test_includes_carry_only_what_the_token_may_read(
    client: TestClient, world: dict[str, str]
) -> None:
    query = {"_include": "Appointment:patient"}
    everyone = client.get(f"{BASE}/Appointment", params=query, headers=_everyone(client))
    assert world["bob"] in _ids(everyone)
    no_patients = bearer(mint(client, "user/Appointment.rs"))
    found = client.get(f"{BASE}/Appointment", params=query, headers=no_patients)
    assert world["bob_appt"] in _ids(found) and not {world["alice"], world["bob"]} & _ids(found)
    assert "Bobbington" not in found.text


def test_revinclude_and_iterate_stay_in_the_compartment(
    client: TestClient, world: dict[str, str]
) -> None:
    rev = {"_id": world["bobs_doctor"], "_revinclude": "Appointment:practitioner"}
    assert world["bob_appt"] in _found(client, "Practitioner", rev, _everyone(client))
    alice = _alice(client, world)
    assert _found(client, "Practitioner", rev, alice) == {world["bobs_doctor"]}
    iterate = [
        ("_include", "Appointment:practitioner"),
        ("_revinclude:iterate", "Appointment:practitioner"),
    ]
    assert world["bob_appt"] in _found(client, "Appointment", iterate, _everyone(client))
    found = client.get(f"{BASE}/Appointment", params=iterate, headers=alice)
    assert world["alice_appt"] in _ids(found) and world["bob_appt"] not in _ids(found)


def test_type_and_system_reads_honour_a_scope_restriction(
    client: TestClient, world: dict[str, str]
) -> None:
    booked_only = bearer(mint(client, "user/Appointment.rs?status=booked"))
    history = client.get(f"{BASE}/Appointment/_history", headers=booked_only)
    assert world["bob_appt"] in _ids(history) and world["bob_cancelled"] not in _ids(history)
    assert history.json().get("total") is None  # a hidden version is never counted
    wide = client.get(
        f"{BASE}/Appointment/_history", headers=bearer(mint(client, "user/Appointment.rs"))
    )
    assert world["bob_cancelled"] in _ids(wide)
    system = client.get(BASE, params={"_type": "Appointment"}, headers=booked_only)
    assert world["bob_appt"] in _ids(system) and world["bob_cancelled"] not in _ids(system)
    instance = client.get(
        f"{BASE}/Appointment/{world['bob_cancelled']}/_history", headers=booked_only
    )
    assert instance.status_code == 404


def test_conditional_create_headers_never_name_a_hidden_resource(
    client: TestClient, world: dict[str, str]
) -> None:
    condition = {"If-None-Exist": f"_id={world['bob_cancelled']}", "Prefer": "return=minimal"}
    body = orjson.dumps(_appointment(world["bob"], world["shared"], status="proposed"))
    sees_all = bearer(mint(client, "user/Appointment.crs"))
    matched = client.post(f"{BASE}/Appointment", content=body, headers=sees_all | FHIR | condition)
    assert matched.status_code == 200
    assert world["bob_cancelled"] in matched.headers["content-location"]
    restricted = bearer(mint(client, "user/Appointment.rs?status=booked user/Appointment.c"))
    created = client.post(
        f"{BASE}/Appointment", content=body, headers=restricted | FHIR | condition
    )
    assert created.status_code == 201, created.text
    assert world["bob_cancelled"] not in str(created.headers)


def test_transaction_if_none_exist_is_evaluated_within_the_compartment(
    client: TestClient, world: dict[str, str]
) -> None:
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:5b7c7f2e-0f4b-4c39-9d4e-1f9a6a1c0e11",
                "resource": _appointment(world["alice"], world["shared"], status="proposed"),
                "request": {
                    "method": "POST",
                    "url": "Appointment",
                    "ifNoneExist": f"_id={world['bob_appt']}",
                },
            }
        ],
    }
    response = client.post(
        BASE, content=orjson.dumps(transaction), headers=_alice(client, world) | FHIR
    )
    assert response.status_code == 200, response.text
    entry = response.json()["entry"][0]
    assert entry["response"]["status"].startswith("201")
    assert world["bob_appt"] not in response.text and world["bob"] not in response.text


@pytest.mark.parametrize("target", ["bob_appt", "nobody"])
def test_conditional_update_and_delete_are_refused_before_evaluation(
    client: TestClient, world: dict[str, str], target: str
) -> None:
    """The same 403 whether the criteria would match another patient's record or nothing."""
    rid = world.get(target, "no-such-id")
    alice = _alice(client, world) | FHIR
    body = orjson.dumps(_appointment(world["alice"], world["shared"]))
    put = client.put(f"{BASE}/Appointment", params={"_id": rid}, content=body, headers=alice)
    assert put.status_code == 403, put.text
    gone = client.delete(f"{BASE}/Appointment", params={"_id": rid}, headers=alice)
    assert gone.status_code == 403, gone.text


def test_next_links_do_not_grow_page_after_page(client: TestClient, world: dict[str, str]) -> None:
    """The policy's own criteria (free Slots only) are not part of the client's link."""
    url: str | None = f"{BASE}/Slot?_count=1"
    queries = []
    while url and len(queries) < 4:
        page = client.get(url, headers=_alice(client, world))
        assert page.status_code == 200, page.text
        links = {link["relation"]: link["url"] for link in page.json()["link"]}
        url = links.get("next")
        if url:
            queries.append([(k, v) for k, v in parse_qsl(urlsplit(url).query) if k != "_cursor"])
    assert len(queries) >= 2
    assert all(query == [("_count", "1")] for query in queries)


def test_a_write_only_token_acts_on_its_own_compartment_only(
    client: TestClient, world: dict[str, str]
) -> None:
    """No read scope is needed to change one's own Appointment (and see the result);
    another patient's is still not known."""
    writer = bearer(mint(client, "patient/Appointment.cu", patient=world["alice"])) | FHIR
    own = _appointment(world["alice"], world["shared"]) | {"id": world["alice_appt"]}
    changed = client.put(
        f"{BASE}/Appointment/{world['alice_appt']}", content=orjson.dumps(own), headers=writer
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == world["alice_appt"]
    bobs = own | {"id": world["bob_appt"]}
    refused = client.put(
        f"{BASE}/Appointment/{world['bob_appt']}", content=orjson.dumps(bobs), headers=writer
    )
    assert refused.status_code == 404 and "HIV" not in refused.text
