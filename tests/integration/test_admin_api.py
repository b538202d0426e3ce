"""The admin console's API: accounts, SMART apps, signing keys, delivery problems, audit.

Real store, SMTP, Redis and Celery worker (the notification rig `env`). Every
operation is tried by an admin (good and bad inputs: OperationOutcome, the
right status, nothing changed on refusal) and by every other kind of token
(403 from the one gate, nothing changed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.notifications.message import with_details
from tests.conftest import FHIR_JSON
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    PASSWORD,
    add_user,
    audit_events,
    bearer,
    call,
    components,
    create,
    mint,
    new_patient,
    post_form,
)
from tests.integration.notify_support import Running, wait_until

ADMIN_SCOPE = "openid fhirUser user/*.cruds"
PORTAL_ID = "portal"  # the patient portal, a first-party client registered at start


@pytest.fixture(scope="module")
def client(env: Running) -> Iterator[TestClient]:
    settings = env.rig.settings.model_copy(update={"auth_enabled": True})
    with TestClient(create_app(settings)) as client:
        add_user(client, "boss", "admin", None, email="boss@example.org")
        yield client


@pytest.fixture(scope="module")
def doctor(client: TestClient) -> str:
    return create(client, {"resourceType": "Practitioner", "name": [{"family": "Admin-Test"}]})


def admin(client: TestClient) -> dict[str, str]:
    return bearer(mint(client, ADMIN_SCOPE, role="admin"))


def others(client: TestClient, doctor: str) -> dict[str, dict[str, str]]:
    """A token of every other kind: each role, a backend service, a role-less user token."""
    patient = new_patient(client, "Someone")
    return {
        "practitioner": bearer(
            mint(client, ADMIN_SCOPE, role="practitioner", fhir_user=f"Practitioner/{doctor}")
        ),
        "frontdesk": bearer(mint(client, ADMIN_SCOPE, role="frontdesk")),
        "patient": bearer(
            mint(
                client,
                "patient/*.cruds",
                role="patient",
                patient=patient,
                fhir_user=f"Patient/{patient}",
            )
        ),
        "backend": bearer(mint(client, "system/*.cruds")),
        "no role": bearer(mint(client, "user/*.cruds")),
    }


def params(**values: Any) -> dict[str, Any]:
    parameter = []
    for name, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            key = "valueBoolean" if isinstance(one, bool) else "valueString"
            parameter.append({"name": name, key: one})
    return {"resourceType": "Parameters", "parameter": parameter}


def run(client: TestClient, op: str, headers: dict[str, str], **values: Any) -> Any:
    return client.post(
        f"{BASE}/{op}",
        json=params(**values),
        headers={**headers, "Content-Type": FHIR_JSON},
    )


def parts(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Each `name` parameter's parts as a dict (repeated parts as lists)."""
    out = []
    for p in body["parameter"]:
        if p["name"] != name:
            continue
        fields: dict[str, Any] = {}
        for q in p["part"]:
            value = next(v for k, v in q.items() if k.startswith("value"))
            fields.setdefault(q["name"], []).append(value)
        out.append({k: v[0] if len(v) == 1 else v for k, v in fields.items()})
    return out


def value(body: dict[str, Any], name: str) -> Any:
    found = [p for p in body["parameter"] if p["name"] == name]
    return next(v for k, v in found[0].items() if k.startswith("value")) if found else None


def users(client: TestClient) -> dict[str, dict[str, Any]]:
    answer = client.get(f"{BASE}/$users", headers=admin(client))
    assert answer.status_code == 200, answer.text
    return {u["username"]: u for u in parts(answer.json(), "user")}


def refused(answer: Any, status: int, words: str = "") -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"]


# -- the gate ------------------------------------------------------------------------------

CHANGES = {
    "$invite-user": {"username": "intruder", "role": "admin", "email": "i@example.org"},
    "$change-user": {"username": "boss", "role": "frontdesk"},
    "$register-app": {
        "name": "x",
        "type": "public",
        "scope": "openid",
        "redirectUri": "https://x.example/cb",
    },
    "$rotate-app-credentials": {"clientId": PORTAL_ID},
    "$remove-app": {"clientId": PORTAL_ID},
    "$rotate-signing-key": {},
}


def test_every_admin_operation_is_listed_and_refused_to_every_other_token(
    client: TestClient, doctor: str
) -> None:
    statement = client.get(f"{BASE}/metadata").json()["rest"][0]
    system = {o["name"] for o in statement["operation"]}
    assert {o[1:] for o in CHANGES} | {"users", "apps", "signing-keys"} <= system
    communication = next(r for r in statement["resource"] if r["type"] == "Communication")
    assert "retry" in {o["name"] for o in communication["operation"]}
    before = (users(client), client.get(f"{BASE}/$apps", headers=admin(client)).json())
    keys = client.get(f"{BASE}/$signing-keys", headers=admin(client)).json()
    for headers in others(client, doctor).values():
        for op in ("$users", "$apps", "$signing-keys"):
            refused(client.get(f"{BASE}/{op}", headers=headers), 403)
        for op, values in CHANGES.items():
            refused(run(client, op, headers, **values), 403)
        refused(run(client, "Communication/any/$retry", headers), 403)
    after = (users(client), client.get(f"{BASE}/$apps", headers=admin(client)).json())
    assert after == before
    assert client.get(f"{BASE}/$signing-keys", headers=admin(client)).json() == keys
    assert client.get(f"{BASE}/$users").status_code == 401


# -- accounts ------------------------------------------------------------------------------


def test_invite_mails_a_link_that_sets_the_first_password(
    client: TestClient, env: Running, doctor: str
) -> None:
    answer = run(
        client,
        "$invite-user",
        admin(client),
        username="NewDoc",
        role="practitioner",
        email="newdoc@example.org",
        fhirUser=f"Practitioner/{doctor}",
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    [user] = parts(answer.json(), "user")
    assert user == {
        "username": "newdoc",
        "role": "practitioner",
        "fhirUser": f"Practitioner/{doctor}",
        "email": "newdoc@example.org",
        "disabled": False,
        "secondFactor": False,
    }
    assert value(answer.json(), "mailed") is True
    assert call(client, components(client).accounts.login, "newdoc", PASSWORD) is None
    [mail] = wait_until(lambda: env.smtp.to("newdoc@example.org"))
    assert "newdoc" in mail.get_content()
    link = re.search(r"(http\S+token=\S+)", mail.get_content())
    assert link
    token = link.group(1).split("token=")[1]
    chosen = "a-first-password-of-my-own"
    done = post_form(client, f"{AUTH}/password-reset/confirm", {"token": token, "password": chosen})
    assert done.status_code == 200
    assert call(client, components(client).accounts.login, "newdoc", chosen) is not None
    events = [
        e
        for e in audit_events(client)
        if any(s["code"] == "user-invited" for s in e.get("subtype", []))
    ]
    assert [e["entity"][0]["what"]["identifier"]["value"] for e in events] == ["newdoc"]
    assert events[0]["agent"][0]["altId"] == "tester"  # the admin who invited


@pytest.mark.parametrize(
    ("values", "status", "words"),
    [
        ({"username": "boss", "role": "admin", "email": "b@example.org"}, 422, "taken"),
        ({"username": "u1", "role": "wizard", "email": "u1@example.org"}, 422, "role"),
        ({"username": "u2", "role": "frontdesk", "email": "not-an-address"}, 422, "e-mail"),
        ({"username": "u3", "role": "frontdesk"}, 400, "email is required"),
        ({"username": "u4", "role": "practitioner", "email": "u4@example.org"}, 422, "linked"),
        (
            {
                "username": "u5",
                "role": "patient",
                "email": "u5@example.org",
                "fhirUser": "Patient/nope",
            },
            422,
            "does not exist",
        ),
    ],
)
def test_a_bad_invitation_is_refused_and_creates_nothing(
    client: TestClient, values: dict[str, str], status: int, words: str
) -> None:
    before = users(client)
    refused(run(client, "$invite-user", admin(client), **values), status, words)
    assert users(client) == before


def test_an_invitation_is_posted_not_fetched(client: TestClient) -> None:
    query = "username=getter&role=frontdesk&email=g%40example.org"
    refused(client.get(f"{BASE}/$invite-user?{query}", headers=admin(client)), 405)
    assert "getter" not in users(client)


def test_change_role_disable_and_second_factor_end_the_sessions(client: TestClient) -> None:
    add_user(client, "desk", "frontdesk", None)
    call(client, components(client).accounts.enable_totp, "desk")
    session = bearer(mint(client, ADMIN_SCOPE, role="frontdesk"))
    call(client, components(client).store.update_user, "desk", {})  # untouched so far
    role = run(client, "$change-user", admin(client), username="desk", role="admin")
    assert role.status_code == 200, role.text
    assert parts(role.json(), "user")[0]["role"] == "admin"
    reset = run(client, "$change-user", admin(client), username="desk", resetSecondFactor=True)
    assert parts(reset.json(), "user")[0]["secondFactor"] is False
    off = run(client, "$change-user", admin(client), username="DESK", disabled=True)
    assert parts(off.json(), "user")[0]["disabled"] is True
    assert call(client, components(client).accounts.login, "desk", PASSWORD) is None
    on = run(client, "$change-user", admin(client), username="desk", disabled=False)
    assert parts(on.json(), "user")[0]["disabled"] is False
    assert call(client, components(client).accounts.login, "desk", PASSWORD) is not None
    assert session  # a token minted for the test's `tester` sub, not desk's: unaffected
    changed = [
        e["outcomeDesc"]
        for e in audit_events(client)
        if any(s["code"] == "user-changed" for s in e.get("subtype", []))
        and e["entity"][0]["what"]["identifier"]["value"] == "desk"
    ]
    assert sorted(changed) == sorted(
        ["role admin", "second factor off", "disabled true", "disabled false"]
    )


def test_a_changed_account_loses_its_tokens(client: TestClient) -> None:
    add_user(client, "roled", "frontdesk", None)
    auth = components(client)
    grant = {"client_id": "c", "sub": "roled", "scope": ADMIN_SCOPE, "role": "frontdesk"}
    issued = auth.tokens.access_token(grant)
    call(
        client,
        auth.store.save_access,
        {**grant, "_id": issued.jti, "expires_at": issued.expires_at},
    )
    assert client.get(f"{BASE}/Practitioner", headers=bearer(issued.token)).status_code == 200
    run(client, "$change-user", admin(client), username="roled", role="admin")
    assert client.get(f"{BASE}/Practitioner", headers=bearer(issued.token)).status_code == 401


@pytest.mark.parametrize(
    ("values", "status", "words"),
    [
        ({"username": "ghost", "role": "admin"}, 404, "no user"),
        ({"username": "boss"}, 422, "Nothing to change"),
        ({"username": "boss", "role": "wizard"}, 422, "role"),
        ({"username": "boss", "disabled": "maybe"}, 400, "true or false"),
        ({"role": "admin"}, 400, "username is required"),
    ],
)
def test_a_bad_change_is_refused_and_changes_nothing(
    client: TestClient, values: dict[str, Any], status: int, words: str
) -> None:
    before = users(client)
    refused(run(client, "$change-user", admin(client), **values), status, words)
    assert users(client) == before


def test_the_last_admin_stays_an_admin(client: TestClient) -> None:
    add_user(client, "former", "admin", None)
    for name, user in users(client).items():
        if user["role"] == "admin" and name != "boss":
            call(client, components(client).store.update_user, name, {"disabled": True})
    before = users(client)
    for values in ({"role": "frontdesk"}, {"disabled": True}):
        answer = run(client, "$change-user", admin(client), username="boss", **values)
        refused(answer, 422, "last admin")
    assert users(client) == before
    assert run(client, "$change-user", admin(client), username="former", disabled=False)
    demoted = run(client, "$change-user", admin(client), username="boss", role="frontdesk")
    assert demoted.status_code == 200  # another admin can sign in now
    run(client, "$change-user", admin(client), username="boss", role="admin")


# -- SMART apps ------------------------------------------------------------------------------


def _app(client: TestClient, client_id: str) -> dict[str, Any]:
    listed = client.get(f"{BASE}/$apps", headers=admin(client)).json()
    return {a["clientId"]: a for a in parts(listed, "app")}[client_id]


def test_register_rotate_and_remove_an_app(client: TestClient) -> None:
    registered = run(
        client,
        "$register-app",
        admin(client),
        name="Lab viewer",
        type="confidential",
        scope="openid user/Appointment.rs",
        redirectUri=["https://lab.example/cb", "https://lab.example/cb2"],
        clientId="lab-viewer",
    )
    assert registered.status_code == 200, registered.text
    secret = value(registered.json(), "clientSecret")
    assert secret and _app(client, "lab-viewer")["redirectUri"] == [
        "https://lab.example/cb",
        "https://lab.example/cb2",
    ]
    stored = call(client, components(client).clients.get, "lab-viewer")
    assert stored.check_client_secret(secret)
    rotated = run(client, "$rotate-app-credentials", admin(client), clientId="lab-viewer")
    new = value(rotated.json(), "clientSecret")
    stored = call(client, components(client).clients.get, "lab-viewer")
    assert new != secret and stored.check_client_secret(new)
    assert not stored.check_client_secret(secret)
    removed = run(client, "$remove-app", admin(client), clientId="lab-viewer")
    assert removed.status_code == 200
    assert call(client, components(client).clients.get, "lab-viewer") is None
    codes = [
        s["code"]
        for e in audit_events(client)
        for s in e.get("subtype", [])
        if any(
            w.get("what", {}).get("identifier", {}).get("value") == "lab-viewer"
            for w in e.get("entity", [])
        )
    ]
    assert {"app-registered", "app-credentials-rotated", "app-removed"} <= set(codes)


def test_a_backend_app_gets_new_keys(client: TestClient) -> None:
    jwks = '{"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "kid": "one"}]}'
    registered = run(
        client, "$register-app", admin(client), name="Sync", type="backend",
        scope="system/Slot.rs", jwks=jwks, clientId="sync",
    )  # fmt: skip
    assert registered.status_code == 200, registered.text
    assert value(registered.json(), "clientSecret") is None
    answer = run(
        client,
        "$rotate-app-credentials",
        admin(client),
        clientId="sync",
        jwksUri="https://sync.example/jwks",
    )
    assert answer.status_code == 200, answer.text
    stored = call(client, components(client).clients.get, "sync")
    assert stored.jwks is None and stored.jwks_uri == "https://sync.example/jwks"


@pytest.mark.parametrize(
    ("op", "values", "status", "words"),
    [
        ("$register-app", {"name": "x", "type": "robot", "scope": "openid"}, 422, "type"),
        ("$register-app", {"name": "x", "type": "public", "scope": "openid"}, 422, "redirect"),
        (
            "$register-app",
            {"name": "x", "type": "backend", "scope": "system/*.rs", "jwks": "{"},
            400,
            "JSON",
        ),
        (
            "$register-app",
            {
                "name": "x",
                "type": "public",
                "scope": "openid",
                "redirectUri": "https://a.example/cb",
                "clientId": PORTAL_ID,
            },
            422,
            "exists",
        ),
        ("$rotate-app-credentials", {"clientId": "nope"}, 404, "no client"),
        ("$rotate-app-credentials", {"clientId": PORTAL_ID}, 422, "own web clients"),
        ("$remove-app", {"clientId": PORTAL_ID}, 422, "own web clients"),
        ("$remove-app", {"clientId": "nope"}, 404, "no client"),
        ("$remove-app", {}, 400, "clientId is required"),
    ],
)
def test_a_bad_app_request_is_refused_and_changes_nothing(
    client: TestClient, op: str, values: dict[str, Any], status: int, words: str
) -> None:
    before = client.get(f"{BASE}/$apps", headers=admin(client)).json()
    portal = call(client, components(client).clients.get, PORTAL_ID)
    refused(run(client, op, admin(client), **values), status, words)
    assert client.get(f"{BASE}/$apps", headers=admin(client)).json() == before
    assert call(client, components(client).clients.get, PORTAL_ID) == portal


# -- signing keys ------------------------------------------------------------------------------


def test_rotating_the_signing_key_signs_new_tokens_with_it_and_keeps_the_old_one(
    client: TestClient,
) -> None:
    old_token = mint(client, ADMIN_SCOPE, role="admin")
    answer = run(client, "$rotate-signing-key", bearer(old_token))
    assert answer.status_code == 200, answer.text
    kid = value(answer.json(), "kid")
    keys = parts(answer.json(), "key")
    assert keys[0]["kid"] == kid and keys[0]["signing"] is True
    assert all(k["signing"] is False and "retired" in k for k in keys[1:]) and keys[1:]
    published = {k["kid"] for k in client.get(f"{AUTH}/jwks").json()["keys"]}
    assert {k["kid"] for k in keys} == published
    assert client.get(f"{BASE}/$users", headers=bearer(old_token)).status_code == 200
    assert components(client).tokens.keyring.signing.kid == kid
    refused(client.get(f"{BASE}/$rotate-signing-key", headers=admin(client)), 405)


# -- delivery problems ---------------------------------------------------------------------------


def _failed_message(client: TestClient, email: str) -> str:
    """A booking confirmation left as the worker leaves one after its last failed attempt."""
    services = client.app.state.services  # type: ignore[attr-defined]
    person = create(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": "Later"}],
            "telecom": [{"system": "email", "value": email}],
        },
    )
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2031-05-06T09:00:00Z",
        "end": "2031-05-06T09:30:00Z",
        "participant": [{"actor": {"reference": f"Patient/{person}"}, "status": "accepted"}],
    }
    appointment = call(client, services.store.create, appointment).resource

    async def record_and_fail() -> str:
        async with services.store.unit_of_work() as uow:
            [cid] = await record_event(services.store, uow, AppointmentEvent("booked", appointment))
            uow.after_commit.clear()  # not published: it "failed" below
        stored = await services.store.read("Communication", cid)
        failed = with_details(stored.resource, attempts=3)
        failed |= {
            "status": "not-done",
            "statusReason": {"text": "The mail server could not be reached."},
        }
        await services.store.update(failed, expected_version=stored.version)
        return str(cid)

    return str(call(client, record_and_fail))


def test_a_failed_message_is_listed_and_sent_on_retry(client: TestClient, env: Running) -> None:
    cid = _failed_message(client, "later@example.org")
    problems = client.get(
        f"{BASE}/Communication", params={"status": "not-done,preparation"}, headers=admin(client)
    ).json()
    [failed] = [e["resource"] for e in problems["entry"] if e["resource"]["id"] == cid]
    assert failed["status"] == "not-done" and failed["statusReason"]["text"]
    answer = client.post(f"{BASE}/Communication/{cid}/$retry", headers=admin(client))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "preparation" and "statusReason" not in answer.json()
    # the worker may still be starting (a module's rig starts with its first test)
    [mail] = wait_until(lambda: env.smtp.to("later@example.org"), timeout=90)
    assert mail["To"] == "later@example.org"

    def sent() -> dict[str, Any] | None:
        now = client.get(f"{BASE}/Communication/{cid}", headers=admin(client)).json()
        return now if now["status"] == "completed" else None

    done = wait_until(sent)
    again = client.post(f"{BASE}/Communication/{cid}/$retry", headers=admin(client))
    refused(again, 409, "completed")
    after = client.get(f"{BASE}/Communication/{cid}", headers=admin(client)).json()
    assert after["meta"]["versionId"] == done["meta"]["versionId"]
    retried = [e for e in audit_events(client) if f"Communication/{cid}" in str(e.get("entity"))]
    assert any(s["code"] == "$retry" for e in retried for s in e["subtype"])


def test_a_retry_is_refused_for_what_is_not_a_failed_notification(client: TestClient) -> None:
    note = create(client, {"resourceType": "Communication", "status": "not-done"})
    refused(
        client.post(f"{BASE}/Communication/{note}/$retry", headers=admin(client)),
        422,
        "not a message",
    )
    refused(client.post(f"{BASE}/Communication/nope/$retry", headers=admin(client)), 404)
    refused(client.get(f"{BASE}/Communication/{note}/$retry", headers=admin(client)), 405)
    stored = client.get(f"{BASE}/Communication/{note}", headers=admin(client)).json()
    assert stored["meta"]["versionId"] == "1"


def test_subscriptions_in_error_are_found_with_their_last_error(
    client: TestClient, doctor: str
) -> None:
    broken = create(
        client,
        {
            "resourceType": "Subscription",
            "status": "error",
            "reason": "EHR sync",
            "criteria": "Appointment?status=booked",
            "error": "The endpoint answered 500.",
            "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.org/hook"},
        },
    )
    found = client.get(f"{BASE}/Subscription", params={"status": "error"}, headers=admin(client))
    assert [(e["resource"]["id"], e["resource"]["error"]) for e in found.json()["entry"]] == [
        (broken, "The endpoint answered 500.")
    ]
    desk = others(client, doctor)["frontdesk"]
    refused(client.get(f"{BASE}/Subscription", params={"status": "error"}, headers=desk), 403)


# -- audit by patient --------------------------------------------------------------------------


def test_who_accessed_a_patient_in_a_period_is_one_admin_search(
    client: TestClient, doctor: str
) -> None:
    watched = new_patient(client, "Watched")
    tokens = others(client, doctor)
    assert client.get(f"{BASE}/Patient/{watched}", headers=tokens["frontdesk"]).status_code == 200
    audit_events(client)  # the journal relayed now
    query = {"patient": f"Patient/{watched}", "date": "ge2020-01-01", "_sort": "date"}
    found = client.get(f"{BASE}/AuditEvent", params=query, headers=admin(client)).json()
    roles = [
        c["code"]
        for e in found["entry"]
        for a in e["resource"]["agent"]
        for r in a.get("role", [])
        for c in r["coding"]
    ]
    assert roles == ["frontdesk"]
    earlier = {**query, "date": "lt2020-01-01"}
    before = client.get(f"{BASE}/AuditEvent", params=earlier, headers=admin(client)).json()
    assert before.get("entry", []) == []
    refused(client.get(f"{BASE}/AuditEvent", params=query, headers=tokens["frontdesk"]), 403)
