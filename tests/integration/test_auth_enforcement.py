"""Enforcement on the FHIR API: 401 for bad tokens, scopes per interaction, patient compartment."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    BASE,
    appointment,
    audit_events,
    auth_app,
    bearer,
    call,
    components,
    create,
    mint,
    new_patient,
)

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, str]:
    alice, bob = new_patient(client, "Alice"), new_patient(client, "Bob")
    return {
        "alice": alice,
        "bob": bob,
        "alice_appt": create(client, appointment(alice)),
        "bob_appt": create(client, appointment(bob)),
        "free_slot": create(
            client,
            {
                "resourceType": "Slot",
                "status": "free",
                "schedule": {"reference": "Schedule/s"},
                "start": "2030-01-02T09:00:00Z",
                "end": "2030-01-02T09:30:00Z",
            },
        ),
        "busy_slot": create(
            client,
            {
                "resourceType": "Slot",
                "status": "busy",
                "schedule": {"reference": "Schedule/s"},
                "start": "2030-01-02T10:00:00Z",
                "end": "2030-01-02T10:30:00Z",
            },
        ),
        "doctor": create(client, {"resourceType": "Practitioner", "name": [{"family": "Who"}]}),
    }


def alice_token(
    client: TestClient, world: dict[str, str], scope: str = "patient/*.cruds"
) -> dict[str, str]:
    return bearer(
        mint(client, scope, patient=world["alice"], fhir_user=f"Patient/{world['alice']}")
    )


def ids(bundle: dict[str, Any]) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "outcome"
    }


# -- 401 ---------------------------------------------------------------------------


def test_no_token_is_401_with_bearer_challenge(client: TestClient, world: dict[str, str]) -> None:
    response = client.get(f"{BASE}/Patient/{world['alice']}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "bearer a.b.c"]
)
def test_malformed_tokens_are_401(client: TestClient, world: dict[str, str], header: str) -> None:
    response = client.get(f"{BASE}/Patient/{world['alice']}", headers={"Authorization": header})
    assert response.status_code == 401 and "Bearer" in response.headers["www-authenticate"]


def test_expired_token_is_401(client: TestClient, world: dict[str, str]) -> None:
    token = mint(client, "user/*.rs", lifetime=-5)
    response = client.get(f"{BASE}/Patient/{world['alice']}", headers=bearer(token))
    assert (
        response.status_code == 401
        and 'error="invalid_token"' in response.headers["www-authenticate"]
    )


def test_tampered_token_is_401(client: TestClient, world: dict[str, str]) -> None:
    token = mint(client, "patient/*.rs", patient=world["alice"])
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["patient"] = world["bob"]
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    response = client.get(
        f"{BASE}/Patient/{world['bob']}", headers=bearer(f"{header}.{forged}.{signature}")
    )
    assert response.status_code == 401


def test_token_of_another_issuer_is_401(client: TestClient, world: dict[str, str]) -> None:
    from joserfc import jwk, jwt

    key = jwk.RSAKey.generate_key(2048, parameters={"kid": "x"})
    token = jwt.encode(
        {"alg": "RS256", "kid": "x"},
        {"iss": BASE, "aud": BASE, "exp": 4102444800, "jti": "j", "scope": "user/*.rs"},
        key,
    )
    assert client.get(f"{BASE}/Patient", headers=bearer(token)).status_code == 401


def test_revoked_token_is_401(client: TestClient, world: dict[str, str]) -> None:
    token = mint(client, "user/*.rs")
    headers = bearer(token)
    assert client.get(f"{BASE}/Patient/{world['alice']}", headers=headers).status_code == 200
    jti = orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    call(client, components(client).store.revoke_access, jti)
    assert client.get(f"{BASE}/Patient/{world['alice']}", headers=headers).status_code == 401


# -- scopes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "method", "status"),
    [
        ("patient/Appointment.read", "GET", 200),
        ("patient/Appointment.read", "POST", 403),  # v1 read gives no create
        ("patient/Appointment.write", "GET", 403),  # v1 write gives no read
        ("patient/Appointment.rs", "POST", 403),  # v2 without c
        ("patient/Appointment.cud", "POST", 201),
        ("patient/Appointment.r", "SEARCH", 403),  # v2 r without s
        ("patient/Appointment.s", "SEARCH", 200),
        ("patient/Patient.rs", "GET", 403),  # another type
    ],
)
def test_scope_mismatches(
    client: TestClient, world: dict[str, str], scope: str, method: str, status: int
) -> None:
    headers = alice_token(client, world, scope)
    if method == "GET":
        response = client.get(f"{BASE}/Appointment/{world['alice_appt']}", headers=headers)
    elif method == "SEARCH":
        response = client.get(f"{BASE}/Appointment", headers=headers)
    else:
        response = client.post(
            f"{BASE}/Appointment",
            content=orjson.dumps(appointment(world["alice"])),
            headers=headers | FHIR,
        )
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["resourceType"] == "OperationOutcome"


# -- the patient compartment -----------------------------------------------------------------


def test_patient_cannot_read_another_patients_appointment(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = alice_token(client, world)
    assert (
        client.get(f"{BASE}/Appointment/{world['alice_appt']}", headers=headers).status_code == 200
    )
    response = client.get(f"{BASE}/Appointment/{world['bob_appt']}", headers=headers)
    assert response.status_code == 404
    assert (
        client.get(
            f"{BASE}/Appointment/{world['bob_appt']}/_history/1", headers=headers
        ).status_code
        == 404
    )
    assert client.get(f"{BASE}/Patient/{world['bob']}", headers=headers).status_code == 404


def test_patient_search_is_filtered(client: TestClient, world: dict[str, str]) -> None:
    headers = alice_token(client, world)
    found = client.get(f"{BASE}/Appointment", headers=headers)
    assert found.status_code == 200, found.text
    assert world["alice_appt"] in ids(found.json())
    assert world["bob_appt"] not in ids(found.json())
    asked = client.get(
        f"{BASE}/Appointment", params={"actor": f"Patient/{world['bob']}"}, headers=headers
    )
    assert asked.status_code == 200 and ids(asked.json()) == set()
    by_post = client.post(
        f"{BASE}/Appointment/_search", data={"_id": world["bob_appt"]}, headers=headers
    )
    assert by_post.status_code == 200 and ids(by_post.json()) == set()
    patients = client.get(f"{BASE}/Patient", headers=headers)
    assert ids(patients.json()) == {world["alice"]}


def test_patient_sees_the_public_directory(client: TestClient, world: dict[str, str]) -> None:
    headers = alice_token(client, world)
    assert client.get(f"{BASE}/Practitioner/{world['doctor']}", headers=headers).status_code == 200
    slots = client.get(f"{BASE}/Slot", headers=headers)
    assert slots.status_code == 200, slots.text
    assert world["free_slot"] in ids(slots.json()) and world["busy_slot"] not in ids(slots.json())
    assert client.get(f"{BASE}/Slot/{world['busy_slot']}", headers=headers).status_code == 404
    assert (
        client.put(
            f"{BASE}/Practitioner/{world['doctor']}", content=b"{}", headers=headers | FHIR
        ).status_code
        == 403
    )


def test_patient_cannot_book_for_someone_else(client: TestClient, world: dict[str, str]) -> None:
    headers = alice_token(client, world) | FHIR
    for_bob = client.post(
        f"{BASE}/Appointment", content=orjson.dumps(appointment(world["bob"])), headers=headers
    )
    assert for_bob.status_code == 403
    for_both = client.post(
        f"{BASE}/Appointment",
        content=orjson.dumps(appointment(world["alice"], world["bob"])),
        headers=headers,
    )
    assert for_both.status_code == 403
    own = client.post(
        f"{BASE}/Appointment", content=orjson.dumps(appointment(world["alice"])), headers=headers
    )
    assert own.status_code == 201, own.text


def test_patient_cannot_change_or_delete_another_patients_appointment(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = alice_token(client, world) | FHIR
    body = appointment(world["alice"]) | {"id": world["bob_appt"]}
    assert (
        client.put(
            f"{BASE}/Appointment/{world['bob_appt']}", content=orjson.dumps(body), headers=headers
        ).status_code
        == 404
    )
    assert (
        client.delete(f"{BASE}/Appointment/{world['bob_appt']}", headers=headers).status_code == 404
    )
    still = client.get(
        f"{BASE}/Appointment/{world['bob_appt']}", headers=bearer(mint(client, "user/*.rs"))
    )
    assert still.status_code == 200


def test_bundle_entries_are_each_checked(client: TestClient, world: dict[str, str]) -> None:
    headers = alice_token(client, world) | FHIR
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Appointment/{world['alice_appt']}"}},
            {"request": {"method": "GET", "url": f"Appointment/{world['bob_appt']}"}},
            {
                "request": {"method": "POST", "url": "Appointment"},
                "resource": appointment(world["bob"]),
            },
        ],
    }
    response = client.post(BASE, content=orjson.dumps(batch), headers=headers)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert (
        statuses[0].startswith("200")
        and statuses[1].startswith("404")
        and statuses[2].startswith("403")
    )
    transaction = batch | {"type": "transaction", "entry": batch["entry"][2:]}
    refused = client.post(BASE, content=orjson.dumps(transaction), headers=headers)
    assert refused.status_code == 403


def test_user_token_sees_everyone(client: TestClient, world: dict[str, str]) -> None:
    found = client.get(
        f"{BASE}/Appointment",
        headers=bearer(mint(client, "user/Appointment.rs", fhir_user="Practitioner/dr-1")),
    )
    assert {world["alice_appt"], world["bob_appt"]} <= ids(found.json())


def test_metadata_needs_no_token_and_carries_smart_security(client: TestClient) -> None:
    statement = client.get(f"{BASE}/metadata").json()
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    config = client.get(f"{BASE}/.well-known/smart-configuration").json()
    assert uris["authorize"] == config["authorization_endpoint"]
    assert uris["token"] == config["token_endpoint"]
    assert uris["introspect"] == config["introspection_endpoint"]
    assert uris["revoke"] == config["revocation_endpoint"]
    assert set(uris) == {"authorize", "token", "register", "manage", "introspect", "revoke"}


def test_access_denied_is_audited(client: TestClient, world: dict[str, str]) -> None:
    client.get(f"{BASE}/Appointment/{world['bob_appt']}", headers=alice_token(client, world))
    subtypes = [s.get("code") for event in audit_events(client) for s in event["subtype"]]
    assert subtypes.count("access-denied") >= 1


def book(client: TestClient, headers: dict[str, str], *parameters: dict[str, Any]) -> Any:
    body = {"resourceType": "Parameters", "parameter": list(parameters)}
    return client.post(
        f"{BASE}/Appointment/$book", content=orjson.dumps(body), headers=headers | FHIR
    )


def test_patient_cannot_book_or_reschedule_through_operations_for_others(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = alice_token(client, world)
    for_bob = book(
        client, headers, {"name": "appt-resource", "resource": appointment(world["bob"])}
    )
    assert for_bob.status_code == 403
    for_nobody = {"resourceType": "Appointment", "status": "proposed", "participant": []}
    assert (
        book(client, headers, {"name": "appt-resource", "resource": for_nobody}).status_code == 403
    )
    steal = book(
        client,
        headers,
        {"name": "appt-resource", "resource": appointment(world["alice"], status="proposed")},
        {"name": "cancelled-appt-id", "valueString": world["bob_appt"]},
    )
    assert steal.status_code == 404
    assert world["bob_appt"] in steal.json()["issue"][0]["diagnostics"]
    confirm_bobs = book(
        client,
        headers,
        {
            "name": "appointment-reference",
            "valueReference": {"reference": f"Appointment/{world['bob_appt']}"},
        },
    )
    assert confirm_bobs.status_code == 404
    assert world["bob_appt"] in confirm_bobs.json()["issue"][0]["diagnostics"]


def test_conditional_create_does_not_reveal_another_patients_resource(
    client: TestClient, world: dict[str, str]
) -> None:
    # The condition is evaluated within Alice's compartment only: Bob's appointment is
    # not a match, so she gets the answer she would get if it did not exist (a create).
    headers = alice_token(client, world) | FHIR | {"If-None-Exist": f"_id={world['bob_appt']}"}
    body = orjson.dumps(appointment(world["alice"]))
    response = client.post(f"{BASE}/Appointment", content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["id"] != world["bob_appt"]
    assert world["bob"] not in response.text and world["bob_appt"] not in str(response.headers)


def test_anonymous_callers_get_401_before_any_body_check(client: TestClient) -> None:
    response = client.post(f"{BASE}/Appointment", content=b"{not json", headers=FHIR)
    assert response.status_code == 401
