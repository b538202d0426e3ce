"""The audit trail of FHIR interactions, with real tokens: recorded, relayed, closed to all but
admins, and answered by `fhir-server audit who-accessed`."""

from __future__ import annotations

import base64
import csv
import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from typer.testing import CliRunner

from fhir_server.cli import app as cli_app
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    BASE,
    add_client,
    add_user,
    appointment,
    audit_events,
    auth_app,
    bearer,
    create,
    login_token,
    mint,
    new_patient,
)

SCOPES = "launch/patient openid fhirUser patient/*.rs user/*.rs user/*.cud"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(auth_enabled=True)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    yield from auth_app(lambda **kw: settings.model_copy(update=kw))


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, str]:
    """Two patients with an Appointment each with dr-1; tokens for one patient, the
    practitioner and an admin, each from a real login."""
    add_client(client, "mobile", "public", SCOPES)
    ann, bob = new_patient(client, "Ann"), new_patient(client, "Bob")
    add_user(client, "ann", "patient", f"Patient/{ann}")
    add_user(client, "dr", "practitioner", "Practitioner/dr-1")
    add_user(client, "boss", "admin", None)
    return {
        "ann": ann,
        "bob": bob,
        "ann_appt": create(client, appointment(ann)),
        "bob_appt": create(client, appointment(bob)),
        "ann_token": login_token(client, "mobile", "ann", "launch/patient patient/*.rs")[
            "access_token"
        ],
        "dr_token": login_token(client, "mobile", "dr", "user/*.rs user/*.cud")["access_token"],
        "admin_token": login_token(client, "mobile", "boss", "user/*.rs user/*.cud")[
            "access_token"
        ],
    }


def rest_events(client: TestClient, marker: str) -> list[dict[str, Any]]:
    """The REST AuditEvents whose entities name `marker` (a `Type/id`)."""
    return [
        e
        for e in audit_events(client)
        if e["type"]["code"] == "rest"
        and any(x.get("what", {}).get("reference") == marker for x in e.get("entity", []))
    ]


def entities(event: dict[str, Any], role: str) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if e["role"]["code"] == role}


def test_patient_read_of_own_appointment_names_patient_and_appointment(
    client: TestClient, world: dict[str, str]
) -> None:
    appt = f"Appointment/{world['ann_appt']}"
    read = client.get(f"{BASE}/{appt}", headers=bearer(world["ann_token"]))
    assert read.status_code == 200
    [event] = rest_events(client, appt)
    AuditEvent.model_validate(event)
    assert event["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction",
        "code": "read",
    }
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert entities(event, "4") == {appt}
    assert entities(event, "1") == {f"Patient/{world['ann']}"}
    requestor, app = event["agent"]
    assert requestor["who"] == {"reference": f"Patient/{world['ann']}"}
    assert requestor["altId"] == "ann" and requestor["role"][0]["coding"][0]["code"] == "patient"
    assert requestor["network"]["address"] == "testclient"
    assert app["who"]["identifier"]["value"] == "mobile" and app["requestor"] is False


def test_denied_read_records_a_failure(client: TestClient, world: dict[str, str]) -> None:
    other = f"Appointment/{world['bob_appt']}"
    refused = client.get(f"{BASE}/{other}", headers=bearer(world["ann_token"]))
    assert refused.status_code == 404
    [event] = rest_events(client, other)
    assert event["outcome"] == "4" and event["outcomeDesc"]
    assert event["agent"][0]["who"]["reference"] == f"Patient/{world['ann']}"
    # The attempt names the patient whose record it was (a reference only: nothing was seen).
    assert entities(event, "1") == {f"Patient/{world['bob']}"}
    assert "Bob" not in refused.text
    forbidden = client.delete(f"{BASE}/Practitioner/dr-1", headers=bearer(world["ann_token"]))
    assert forbidden.status_code == 403
    [deletion] = rest_events(client, "Practitioner/dr-1")
    assert (deletion["action"], deletion["outcome"]) == ("D", "4")


def test_search_records_the_query_and_the_ids_returned(
    client: TestClient, world: dict[str, str]
) -> None:
    found = client.get(
        f"{BASE}/Appointment",
        params={"actor": "Practitioner/dr-1", "_count": "50"},
        headers=bearer(world["dr_token"]),
    )
    assert found.status_code == 200
    returned = {f"Appointment/{e['resource']['id']}" for e in found.json()["entry"]}
    assert returned == {f"Appointment/{world['ann_appt']}", f"Appointment/{world['bob_appt']}"}
    [event] = [
        e
        for e in rest_events(client, f"Appointment/{world['bob_appt']}")
        if e["subtype"][0]["code"] == "search-type"
    ]
    assert entities(event, "4") == returned
    assert entities(event, "1") == {f"Patient/{world['ann']}", f"Patient/{world['bob']}"}
    [query] = [e for e in event["entity"] if e["role"]["code"] == "24"]
    assert base64.b64decode(query["query"]).decode() == "actor=Practitioner%2Fdr-1&_count=50"
    assert event["agent"][0]["role"][0]["coding"][0]["code"] == "practitioner"


def test_writes_and_operations_are_recorded(client: TestClient, world: dict[str, str]) -> None:
    created = client.post(
        f"{BASE}/Appointment",
        content=orjson.dumps(appointment(world["bob"], status="proposed")),
        headers={**FHIR_JSON, **bearer(world["dr_token"])},
    )
    assert created.status_code == 201, created.text
    new = f"Appointment/{created.json()['id']}"
    deleted = client.delete(f"{BASE}/{new}", headers=bearer(world["dr_token"]))
    assert deleted.status_code == 200
    actions = sorted(e["action"] for e in rest_events(client, new))
    assert actions == ["C", "D"]


def test_patient_and_practitioner_cannot_reach_audit_events(
    client: TestClient, world: dict[str, str]
) -> None:
    client.get(f"{BASE}/Patient/{world['ann']}", headers=bearer(world["ann_token"]))
    some = audit_events(client)[0]["id"]
    for who in ("ann_token", "dr_token"):
        token = bearer(world[who])
        assert client.get(f"{BASE}/AuditEvent", headers=token).status_code == 403
        assert client.get(f"{BASE}/AuditEvent/{some}", headers=token).status_code in (403, 404)
        posted = client.post(
            f"{BASE}/AuditEvent/_search", data={"_count": "5"}, headers=token
        ).status_code
        assert posted == 403
    token = bearer(world["dr_token"])
    # System-wide interactions are an admin's (auth.roles); not even there are AuditEvents.
    assert client.get(f"{BASE}/_history", headers=token).status_code == 403
    admin = bearer(world["admin_token"])
    history = client.get(f"{BASE}/_history", params={"_count": "500"}, headers=admin)
    assert history.status_code == 200
    assert all("AuditEvent" not in e["fullUrl"] for e in history.json().get("entry", []))
    system = client.get(BASE, params={"_type": "AuditEvent"}, headers=token)
    assert system.status_code == 403
    included = client.get(
        f"{BASE}/Patient",
        params={"_id": world["ann"], "_revinclude": "AuditEvent:entity"},
        headers=token,
    )
    assert included.status_code == 400  # AuditEvent is no served type: never included


@pytest.mark.parametrize("who", ["ann_token", "dr_token", "admin_token"])
def test_nobody_changes_audit_events_through_the_api(
    client: TestClient, world: dict[str, str], who: str
) -> None:
    client.get(f"{BASE}/Patient/{world['ann']}", headers=bearer(world["ann_token"]))
    event = audit_events(client)[0]
    token = {**FHIR_JSON, **bearer(world[who])}
    body = orjson.dumps({**event, "outcome": "8"})
    url = f"{BASE}/AuditEvent/{event['id']}"
    answers = {
        "create": client.post(f"{BASE}/AuditEvent", content=body, headers=token),
        "update": client.put(url, content=body, headers=token),
        "delete": client.delete(url, headers=token),
        "history": client.get(f"{url}/_history", headers=token),
        "type history": client.get(f"{BASE}/AuditEvent/_history", headers=token),
    }
    if who == "admin_token":  # past the scope and compartment checks: the audit trail's rules
        expected = {"create": 403, "update": 405, "delete": 405, "history": 405}
        assert {k: r.status_code for k, r in answers.items()} == {**expected, "type history": 405}
    else:  # the gate may refuse first, as it does for any type the token cannot change
        assert all(r.status_code in (403, 404, 405) for r in answers.values())
    assert all(r.json()["resourceType"] == "OperationOutcome" for r in answers.values())
    after = {e["id"]: e for e in audit_events(client)}[event["id"]]
    assert after == event


def test_admin_reads_and_searches_audit_events(client: TestClient, world: dict[str, str]) -> None:
    appt = f"Appointment/{world['ann_appt']}"
    client.get(f"{BASE}/{appt}", headers=bearer(world["ann_token"]))
    audit_events(client)  # relayed now
    token = bearer(world["admin_token"])
    found = client.get(
        f"{BASE}/AuditEvent",
        params={"entity": f"Patient/{world['ann']}", "subtype": "read", "_sort": "-date"},
        headers=token,
    )
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json()["entry"]]
    assert events and all(f"Patient/{world['ann']}" in entities(e, "1") for e in events)
    read = client.get(f"{BASE}/AuditEvent/{events[0]['id']}", headers=token)
    assert read.status_code == 200 and read.json()["id"] == events[0]["id"]


def attempts_on(client: TestClient, world: dict[str, str], patient: str) -> list[dict[str, Any]]:
    """The refused interactions an admin finds with `AuditEvent?patient=`, newest first."""
    audit_events(client)  # relayed now
    found = client.get(
        f"{BASE}/AuditEvent",
        params={"patient": f"Patient/{patient}", "outcome": "4", "_sort": "-date"},
        headers=bearer(world["admin_token"]),
    )
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def test_who_tried_to_see_a_patient_s_data_is_one_search(
    client: TestClient, world: dict[str, str]
) -> None:
    """A patient token's read, update and `$book` naming another patient's Appointment are
    refused (404) and each found by `AuditEvent?patient=` for that patient."""
    appt = f"Appointment/{world['bob_appt']}"
    writer = mint(
        client,
        "launch/patient patient/*.rs patient/*.cud",
        patient=world["ann"],
        fhir_user=f"Patient/{world['ann']}",
        role="patient",
    )
    ann = {**FHIR_JSON, **bearer(writer)}
    answers = {
        "read": client.get(f"{BASE}/{appt}", headers=ann),
        "update": client.put(
            f"{BASE}/{appt}",
            content=orjson.dumps({**appointment(world["ann"]), "id": world["bob_appt"]}),
            headers=ann,
        ),
        "operation": client.post(
            f"{BASE}/Appointment/$book",
            content=orjson.dumps(
                {"resourceType": "Parameters", "parameter": [{"name": "appt-id", "valueUri": appt}]}
            ),
            headers=ann,
        ),
    }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 404)
    attempts = [
        e
        for e in attempts_on(client, world, world["bob"])
        if e["agent"][0]["who"] == {"reference": f"Patient/{world['ann']}"}
    ]
    assert sorted(e["subtype"][0]["code"] for e in attempts[:3]) == sorted(answers)
    for event in attempts[:3]:
        AuditEvent.model_validate(event)
        assert event["outcome"] == "4" and appt in entities(event, "4")
        assert entities(event, "1") == {f"Patient/{world['bob']}"}
        assert "Bob" not in orjson.dumps(event).decode()  # references only, no record data
    assert client.get(f"{BASE}/{appt}", headers=bearer(world["dr_token"])).json()["status"] == (
        "booked"
    ), "nothing was changed"


def test_an_attempt_refused_up_front_names_the_patient_too(
    client: TestClient, world: dict[str, str]
) -> None:
    """A read-only patient token deleting another patient's Appointment is refused by its
    scopes (403) before any compartment check; the attempt still names that patient."""
    appt = f"Appointment/{world['bob_appt']}"
    refused = client.delete(f"{BASE}/{appt}", headers=bearer(world["ann_token"]))
    assert refused.status_code == 403
    [event] = [
        e
        for e in attempts_on(client, world, world["bob"])
        if e["action"] == "D" and e["agent"][0]["who"] == {"reference": f"Patient/{world['ann']}"}
    ]
    assert entities(event, "4") == {appt} and entities(event, "1") == {f"Patient/{world['bob']}"}
    assert client.get(f"{BASE}/{appt}", headers=bearer(world["dr_token"])).status_code == 200


def test_a_practitioner_s_refused_attempts_name_the_patient_and_unknown_ids_nobody(
    client: TestClient, world: dict[str, str]
) -> None:
    """Another practitioner's appointment is cut on the way out (read) or by the role's
    narrowing on the way in (update): both 404, both name its patient. An id that is
    stored nowhere names no patient."""
    theirs = {
        **appointment(world["bob"]),
        "participant": [
            {"actor": {"reference": f"Patient/{world['bob']}"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr-2"}, "status": "accepted"},
        ],
    }
    appt = f"Appointment/{create(client, theirs)}"
    dr = {**FHIR_JSON, **bearer(world["dr_token"])}
    read = client.get(f"{BASE}/{appt}", headers=dr)
    changed = client.put(
        f"{BASE}/{appt}",
        content=orjson.dumps({**theirs, "id": appt.split("/")[1], "status": "cancelled"}),
        headers=dr,
    )
    unknown = f"Appointment/{uuid.uuid4()}"
    missing = client.put(
        f"{BASE}/{unknown}",
        content=orjson.dumps({**appointment(world["bob"]), "id": unknown.split("/")[1]}),
        headers=dr,
    )
    assert (read.status_code, changed.status_code, missing.status_code) == (404, 404, 404)
    by_dr = [
        e
        for e in attempts_on(client, world, world["bob"])
        if e["agent"][0]["who"] == {"reference": "Practitioner/dr-1"}
    ]
    assert [e["subtype"][0]["code"] for e in by_dr[:2]] == ["update", "read"]
    assert all(appt in entities(e, "4") for e in by_dr[:2])
    [attempt] = rest_events(client, unknown)
    assert attempt["outcome"] == "4" and entities(attempt, "1") == set()
    assert entities(attempt, "4") == {unknown}


def test_cli_answers_who_accessed_a_patient(
    client: TestClient, world: dict[str, str], settings: Settings
) -> None:
    appt = f"Appointment/{world['bob_appt']}"
    client.get(f"{BASE}/{appt}", headers=bearer(world["dr_token"]))
    client.get(f"{BASE}/{appt}", headers=bearer(world["ann_token"]))  # refused: not hers
    audit_events(client)  # relayed now
    env = {
        "FHIR_MONGODB_URI": settings.mongodb_uri or "",
        "FHIR_DATABASE": settings.database,
        "FHIR_PUBLIC_BASE_URL": BASE,
    }
    runner = CliRunner()
    args = ["audit", "who-accessed", f"Patient/{world['bob']}", "--since", "2020-01-01"]
    result = runner.invoke(cli_app, [*args, "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.stdout)
    seen = {(r["agent"], r["interaction"], r["outcome"]) for r in rows if appt in r["resources"]}
    assert ("Practitioner/dr-1", "read", "0") in seen
    assert (f"Patient/{world['ann']}", "read", "4") in seen
    assert all(r["agent"] != f"Patient/{world['ann']}" or r["outcome"] == "4" for r in rows)
    as_csv = runner.invoke(cli_app, [*args, "--format", "csv"], env=env)
    assert len(list(csv.DictReader(io.StringIO(as_csv.stdout)))) == len(rows)
    table = runner.invoke(cli_app, args, env=env)
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split()[:2] == [
        "recorded",
        "agent",
    ]
    before = runner.invoke(cli_app, [*args, "--until", "2021-01-01", "--format", "json"], env=env)
    assert before.exit_code == 0 and orjson.loads(before.stdout) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["Bob", "--since", "2026-01-01"], "Patient/ID"),
        (["Patient/x", "--since", "yesterday"], "--since"),
        (["Patient/x", "--since", "2026-01-01", "--format", "xml"], "--format"),
    ],
)
def test_cli_refuses_bad_arguments_in_one_line(args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli_app, ["audit", "who-accessed", *args])
    assert result.exit_code == 1
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_reports_an_unreachable_store_in_one_line() -> None:
    env = {
        "FHIR_MONGODB_URI": "mongodb://127.0.0.1:9/",
        "FHIR_DATABASE": f"x{uuid.uuid4().hex[:8]}",
    }
    args = ["audit", "who-accessed", "Patient/x", "--since", "2026-01-01"]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 1
    assert "not reachable" in result.stderr and len(result.stderr.strip().splitlines()) == 1
