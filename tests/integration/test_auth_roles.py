"""Roles with real tokens: practitioner, front desk and admin each get their own defaults,
and a patient cannot write the clinic's fields (auth.roles)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.auth.users import AccountError
from fhir_server.scheduling import extensions as ext
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    add_client,
    add_user,
    auth_app,
    bearer,
    call,
    components,
    create,
    login_token,
    mint,
)

FHIR = {"Content-Type": "application/fhir+json"}
ALL = "user/*.cruds"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


def _appointment(patient: str, actor: str, status: str = "booked", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": "2030-01-02T09:00:00Z",
        "end": "2030-01-02T09:30:00Z",
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": actor}, "status": "accepted"},
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, str]:
    """Dr A sees Alice (directly) and Carol (through A's PractitionerRole); Dr B sees Bob."""
    people = {
        name: create(client, {"resourceType": "Patient", "name": [{"family": name}]})
        for name in ("Alice", "Bob", "Carol")
    }
    dr_a = create(client, {"resourceType": "Practitioner", "name": [{"family": "A"}]})
    dr_b = create(client, {"resourceType": "Practitioner", "name": [{"family": "B"}]})
    role_a = create(
        client,
        {"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/{dr_a}"}},
    )
    schedule_a = create(
        client, {"resourceType": "Schedule", "actor": [{"reference": f"PractitionerRole/{role_a}"}]}
    )
    schedule_b = create(
        client, {"resourceType": "Schedule", "actor": [{"reference": f"Practitioner/{dr_b}"}]}
    )
    subscription = create(
        client,
        {
            "resourceType": "Subscription",
            "status": "off",
            "reason": "EHR feed",
            "criteria": "Appointment?status=booked",
            "channel": {
                "type": "rest-hook",
                "endpoint": "https://ehr.example.org/hook",
                "header": ["Authorization: Bearer s3cret"],
            },
        },
    )
    return {
        **{k.lower(): v for k, v in people.items()},
        "dr_a": dr_a,
        "dr_b": dr_b,
        "role_a": role_a,
        "schedule_a": schedule_a,
        "schedule_b": schedule_b,
        "subscription": subscription,
        "alice_appt": create(client, _appointment(people["Alice"], f"Practitioner/{dr_a}")),
        "carol_appt": create(client, _appointment(people["Carol"], f"PractitionerRole/{role_a}")),
        "bob_appt": create(client, _appointment(people["Bob"], f"Practitioner/{dr_b}")),
    }


def as_role(client: TestClient, role: str, fhir_user: str | None = None) -> dict[str, str]:
    return bearer(mint(client, ALL, fhir_user=fhir_user, role=role)) | FHIR


def dr_a(client: TestClient, world: dict[str, str]) -> dict[str, str]:
    return as_role(client, "practitioner", f"Practitioner/{world['dr_a']}")


def as_patient(client: TestClient, patient: str) -> dict[str, str]:
    token = mint(
        client, "patient/*.cruds", patient=patient, fhir_user=f"Patient/{patient}", role="patient"
    )
    return bearer(token) | FHIR


def found(client: TestClient, url: str, headers: dict[str, str]) -> set[str]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", [])}


def refused(response: Any, status: int = 403) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0].get("diagnostics", ""))


# -- practitioner ------------------------------------------------------------------


def test_practitioner_sees_own_appointments_and_the_patients_booked_with_them(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = dr_a(client, world)
    assert found(client, f"{BASE}/Appointment", headers) == {
        world["alice_appt"],
        world["carol_appt"],
    }
    assert found(client, f"{BASE}/Patient", headers) == {world["alice"], world["carol"]}
    assert client.get(f"{BASE}/Patient/{world['carol']}", headers=headers).status_code == 200
    for path in (f"Patient/{world['bob']}", f"Appointment/{world['bob_appt']}"):
        refused(client.get(f"{BASE}/{path}", headers=headers), 404)


def test_practitioner_edits_only_their_own_practitioner_record(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = dr_a(client, world)
    other = client.get(f"{BASE}/Practitioner/{world['dr_b']}", headers=headers).json()
    other["telecom"] = [{"system": "phone", "value": "+1 555 0100"}]
    reason = refused(
        client.put(f"{BASE}/Practitioner/{world['dr_b']}", json=other, headers=headers)
    )
    assert "own Practitioner" in reason
    own = client.get(f"{BASE}/Practitioner/{world['dr_a']}", headers=headers).json()
    own["telecom"] = [{"system": "phone", "value": "+1 555 0101"}]
    changed = client.put(f"{BASE}/Practitioner/{world['dr_a']}", json=own, headers=headers)
    assert changed.status_code == 200, changed.text
    stored = client.get(f"{BASE}/Practitioner/{world['dr_b']}", headers=headers).json()
    assert "telecom" not in stored


def test_practitioner_cannot_delete_patients_or_read_subscriptions(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = dr_a(client, world)
    refused(client.delete(f"{BASE}/Patient/{world['alice']}", headers=headers))
    assert client.get(f"{BASE}/Patient/{world['alice']}", headers=headers).status_code == 200
    refused(client.get(f"{BASE}/Subscription/{world['subscription']}", headers=headers))
    refused(client.get(f"{BASE}/Subscription", headers=headers))
    refused(client.get(f"{BASE}/_history", headers=headers))


def test_practitioner_generates_slots_only_on_their_own_schedule(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = dr_a(client, world)
    window = "start=2030-01-01T00:00:00Z&end=2030-01-01T00:00:01Z"
    other = client.get(
        f"{BASE}/Schedule/{world['schedule_b']}/$generate-slots?{window}", headers=headers
    )
    refused(other, 404)
    own = client.post(
        f"{BASE}/Schedule/{world['schedule_a']}/$generate-slots?{window}", headers=headers
    )
    assert own.status_code != 404 and own.status_code != 403, own.text


# -- front desk and admin ----------------------------------------------------------


def test_front_desk_sees_the_clinic_but_not_its_configuration(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = as_role(client, "frontdesk")
    assert {world["alice"], world["bob"], world["carol"]} <= found(
        client, f"{BASE}/Patient", headers
    )
    assert {world["alice_appt"], world["bob_appt"]} <= found(client, f"{BASE}/Appointment", headers)
    refused(client.delete(f"{BASE}/Patient/{world['bob']}", headers=headers))
    refused(client.get(f"{BASE}/Subscription/{world['subscription']}", headers=headers))
    schedule = {"resourceType": "Schedule", "actor": [{"reference": "Location/x"}]}
    refused(client.post(f"{BASE}/Schedule", json=schedule, headers=headers))
    window = "start=2030-01-01T00:00:00Z&end=2030-01-02T00:00:00Z"
    refused(
        client.post(
            f"{BASE}/Schedule/{world['schedule_a']}/$generate-slots?{window}", headers=headers
        )
    )
    new = client.post(
        f"{BASE}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Z"}]},
        headers=headers,
    )
    assert new.status_code == 201, new.text


def test_admin_reads_subscription_secrets(client: TestClient, world: dict[str, str]) -> None:
    headers = as_role(client, "admin")
    got = client.get(f"{BASE}/Subscription/{world['subscription']}", headers=headers)
    assert got.status_code == 200
    assert got.json()["channel"]["header"] == ["Authorization: Bearer s3cret"]


# -- what a patient may not write --------------------------------------------------


def test_patient_cannot_change_clinic_controlled_fields(
    client: TestClient, world: dict[str, str]
) -> None:
    alice = create(
        client,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:mrn", "value": "1"}],
            "active": True,
            "name": [{"family": "Own"}],
        },
    )
    headers = as_patient(client, alice)
    current = client.get(f"{BASE}/Patient/{alice}", headers=headers).json()
    for field, value in (
        ("identifier", [{"system": "urn:mrn", "value": "2"}]),
        ("active", False),
        ("managingOrganization", {"reference": "Organization/o"}),
        ("generalPractitioner", [{"reference": f"Practitioner/{world['dr_a']}"}]),
        ("meta", {"security": [{"system": "urn:s", "code": "VIP"}]}),
    ):
        reason = refused(
            client.put(f"{BASE}/Patient/{alice}", json={**current, field: value}, headers=headers)
        )
        assert "Only the clinic" in reason
    dropped = {k: v for k, v in current.items() if k != "identifier"}
    refused(client.put(f"{BASE}/Patient/{alice}", json=dropped, headers=headers))
    patch = [{"op": "replace", "path": "/identifier/0/value", "value": "3"}]
    refused(
        client.patch(
            f"{BASE}/Patient/{alice}",
            json=patch,
            headers=headers | {"Content-Type": "application/json-patch+json"},
        )
    )
    renamed = {**current, "name": [{"family": "Renamed"}]}
    assert client.put(f"{BASE}/Patient/{alice}", json=renamed, headers=headers).status_code == 200
    stored = client.get(f"{BASE}/Patient/{alice}", headers=headers).json()
    assert stored["identifier"] == [{"system": "urn:mrn", "value": "1"}] and stored["active"]


def test_patient_cannot_set_hold_expiry_or_answer_for_the_practitioner(
    client: TestClient, world: dict[str, str]
) -> None:
    carol = world["carol"]
    headers = as_patient(client, carol)
    pending = _appointment(carol, f"Practitioner/{world['dr_a']}", status="pending")
    pending["participant"][1]["status"] = "needs-action"
    rid = create(client, pending)
    current = client.get(f"{BASE}/Appointment/{rid}", headers=headers).json()

    accepted = [current["participant"][0], {**current["participant"][1], "status": "accepted"}]
    reason = refused(
        client.put(
            f"{BASE}/Appointment/{rid}", json={**current, "participant": accepted}, headers=headers
        )
    )
    assert "only for themselves" in reason
    hold = {"url": ext.HOLD_EXPIRES, "valueInstant": "2031-01-01T00:00:00Z"}
    refused(
        client.put(
            f"{BASE}/Appointment/{rid}", json={**current, "extension": [hold]}, headers=headers
        )
    )
    new = {**_appointment(carol, f"Practitioner/{world['dr_a']}"), "extension": [hold]}
    refused(client.post(f"{BASE}/Appointment", json=new, headers=headers))
    answer = {
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": f"Appointment/{rid}"},
        "actor": {"reference": f"Practitioner/{world['dr_a']}"},
        "participantStatus": "accepted",
    }
    refused(client.post(f"{BASE}/AppointmentResponse", json=answer, headers=headers))
    stored = client.get(f"{BASE}/Appointment/{rid}", headers=headers).json()
    assert stored["status"] == "pending"
    assert stored["participant"][1]["status"] == "needs-action"


def test_patient_cannot_write_slots_or_schedules_or_generate_slots(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = as_patient(client, world["alice"])
    slot = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{world['schedule_a']}"},
        "status": "free",
        "start": "2030-01-02T09:00:00Z",
        "end": "2030-01-02T09:30:00Z",
    }
    refused(client.post(f"{BASE}/Slot", json=slot, headers=headers))
    schedule = client.get(f"{BASE}/Schedule/{world['schedule_a']}", headers=headers).json()
    refused(client.put(f"{BASE}/Schedule/{world['schedule_a']}", json=schedule, headers=headers))
    window = "start=2030-01-01T00:00:00Z&end=2030-01-02T00:00:00Z"
    for method in ("GET", "POST"):
        reason = refused(
            client.request(
                method,
                f"{BASE}/Schedule/{world['schedule_a']}/$generate-slots?{window}",
                headers=headers,
            )
        )
        assert "$generate-slots" in reason


def test_patient_cannot_recreate_someone_elses_deleted_id(
    client: TestClient, world: dict[str, str]
) -> None:
    bobs = create(client, _appointment(world["bob"], f"Practitioner/{world['dr_b']}"))
    admin = as_role(client, "admin")
    assert client.delete(f"{BASE}/Appointment/{bobs}", headers=admin).status_code == 200
    alice = world["alice"]
    headers = as_patient(client, alice)
    mine = {**_appointment(alice, f"Practitioner/{world['dr_a']}", status="proposed"), "id": bobs}
    reason = refused(client.put(f"{BASE}/Appointment/{bobs}", json=mine, headers=headers))
    assert "belonged to another" in reason
    refused(client.get(f"{BASE}/Appointment/{bobs}", headers=admin), 410)

    own = create(client, _appointment(alice, f"Practitioner/{world['dr_a']}", status="proposed"))
    assert client.delete(f"{BASE}/Appointment/{own}", headers=admin).status_code == 200
    again = client.put(f"{BASE}/Appointment/{own}", json={**mine, "id": own}, headers=headers)
    assert again.status_code == 201, again.text


# -- the role travels in the token -------------------------------------------------


def test_migration_gives_every_account_one_of_the_four_words(client: TestClient) -> None:
    store = components(client).store
    for name, role, fhir_user in (
        ("old-staff", "staff", None),
        ("old-unlinked", "practitioner", None),
        ("old-admin", "admin", None),
        ("old-doctor", "practitioner", "Practitioner/x"),
    ):
        call(client, store.add_user, {"_id": name, "role": role, "fhir_user": fhir_user})
    changed = call(client, components(client).accounts.migrate_roles)
    assert sorted(changed) == ["old-staff", "old-unlinked"]
    roles = {u["username"]: u["role"] for u in call(client, components(client).accounts.list)}
    assert roles["old-staff"] == roles["old-unlinked"] == "frontdesk"
    assert roles["old-admin"] == "admin" and roles["old-doctor"] == "practitioner"
    assert call(client, components(client).accounts.migrate_roles) == []


def test_a_front_desk_login_carries_its_role_in_the_token(
    client: TestClient, world: dict[str, str]
) -> None:
    add_user(client, "desk1", "frontdesk", None)
    add_client(client, "desk-app", "public", "openid fhirUser user/*.cruds")
    token = login_token(client, "desk-app", "desk1", "openid fhirUser user/*.cruds")
    payload = token["access_token"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["role"] == "frontdesk"
    headers = bearer(token["access_token"]) | FHIR
    assert world["bob"] in found(client, f"{BASE}/Patient", headers)
    refused(client.delete(f"{BASE}/Patient/{world['bob']}", headers=headers))


def test_accounts_take_the_four_role_words_only(client: TestClient) -> None:
    with pytest.raises(AccountError, match="frontdesk"):
        add_user(client, "old-word", "staff", None)
    with pytest.raises(AccountError, match="Practitioner/"):
        add_user(client, "unlinked-doctor", "practitioner", None)


def test_clinic_roles_open_an_ehr_launch_and_a_patient_does_not(
    client: TestClient, world: dict[str, str]
) -> None:
    launch = {"patient": world["alice"]}
    for role, fhir_user in (("frontdesk", None), ("practitioner", f"Practitioner/{world['dr_a']}")):
        headers = as_role(client, role, fhir_user) | {"Content-Type": "application/json"}
        opened = client.post(f"{AUTH}/launch", json=launch, headers=headers)
        assert opened.status_code == 200 and opened.json()["launch"], opened.text
    as_alice = as_patient(client, world["alice"]) | {"Content-Type": "application/json"}
    refused_launch = client.post(f"{AUTH}/launch", json=launch, headers=as_alice)
    assert refused_launch.status_code == 403


def test_a_transaction_entry_is_held_to_the_same_fields(
    client: TestClient, world: dict[str, str]
) -> None:
    alice = create(
        client,
        {"resourceType": "Patient", "identifier": [{"value": "mrn-9"}], "name": [{"family": "T"}]},
    )
    headers = as_patient(client, alice)
    current = client.get(f"{BASE}/Patient/{alice}", headers=headers).json()
    changed = {**current, "identifier": [{"value": "mine-now"}], "name": [{"family": "U"}]}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": changed, "request": {"method": "PUT", "url": f"Patient/{alice}"}}],
    }
    answer = client.post(BASE, json=bundle, headers=headers)
    assert answer.status_code == 403, answer.text
    stored = client.get(f"{BASE}/Patient/{alice}", headers=headers).json()
    assert stored["identifier"] == [{"value": "mrn-9"}] and stored["name"] == [{"family": "T"}]


def test_practitioner_deletes_only_their_own_appointments(
    client: TestClient, world: dict[str, str]
) -> None:
    headers = dr_a(client, world)
    mine = create(client, _appointment(world["alice"], f"Practitioner/{world['dr_a']}"))
    theirs = create(client, _appointment(world["bob"], f"Practitioner/{world['dr_b']}"))
    refused(client.delete(f"{BASE}/Appointment/{theirs}", headers=headers), 404)
    assert client.delete(f"{BASE}/Appointment/{mine}", headers=headers).status_code == 200
    admin = as_role(client, "admin")
    assert client.get(f"{BASE}/Appointment/{theirs}", headers=admin).status_code == 200
