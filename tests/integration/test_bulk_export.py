"""FHIR Bulk Data Access 2.0 `$export`, driven as a bulk client does, against a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from fhir_server.cli import app
from fhir_server.settings import Settings
from fhir_server.store.export_store import JOBS, PARTS
from tests.integration.auth_helpers import BASE, bearer, call, mint
from tests.integration.bulk_support import (
    ASYNC,
    BulkClient,
    Rig,
    backend_token,
    insert,
    start_rig,
    store_of,
)

PATIENTS = [f"p{i}" for i in range(5)]
MEMBERS = ["p0", "p1"]


def _world() -> list[dict[str, Any]]:
    patients = [
        {"resourceType": "Patient", "id": p, "name": [{"family": f"Fam{p}"}]} for p in PATIENTS
    ]
    appointments = [
        {
            "resourceType": "Appointment",
            "id": f"a-{p}",
            "status": "booked" if p != "p4" else "cancelled",
            "start": "2030-01-02T09:00:00Z",
            "end": "2030-01-02T09:30:00Z",
            "participant": [
                {"actor": {"reference": f"Patient/{p}"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/dr"}, "status": "accepted"},
                *([{"actor": {"reference": "Location/room"}, "status": "accepted"}] * (p == "p2")),
            ],
        }
        for p in PATIENTS
    ]
    return [
        *patients,
        *appointments,
        {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Doc"}]},
        {"resourceType": "Location", "id": "room", "name": "Room 1"},
        {
            "resourceType": "Group",
            "id": "cohort",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{m}"}} for m in MEMBERS],
        },
        {
            "resourceType": "Subscription",
            "id": "hook",
            "status": "off",
            "reason": "EHR sync",
            "criteria": "Appointment?",
            "channel": {"type": "rest-hook", "endpoint": "https://ehr.example/hook",
                        "header": ["Authorization: Bearer ehr-secret"]},
        },
    ]  # fmt: skip


@pytest.fixture(scope="module")
def rig(settings_factory: Callable[..., Settings]) -> Iterator[Rig]:
    for running in start_rig(settings_factory, export_part_size=2):
        insert(running.client, _world())
        yield running


@pytest.fixture
def bulk(rig: Rig) -> BulkClient:
    return BulkClient(rig.client, backend_token(rig.client))


def _ids(files: dict[str, list[dict[str, Any]]], rtype: str) -> list[str]:
    return sorted(r["id"] for r in files.get(rtype, []))


def _jobs(rig: Rig) -> int:
    return int(call(rig.client, store_of(rig.client).database.db[JOBS].count_documents, {}))


def test_system_export_round_trip(bulk: BulkClient) -> None:
    manifest, files = bulk.export(f"{BASE}/$export")
    assert manifest["request"] == f"{BASE}/$export"
    assert manifest["requiresAccessToken"] is True
    assert manifest["transactionTime"].endswith("Z") and manifest["error"] == []
    assert _ids(files, "Patient") == PATIENTS  # several parts of 2, joined in order
    assert len(files["Appointment"]) == len(PATIENTS)
    assert _ids(files, "Group") == ["cohort"] and _ids(files, "Practitioner") == ["dr"]
    assert "Subscription" not in files  # its headers hold an EHR's credentials


def test_type_since_and_type_filter(bulk: BulkClient) -> None:
    query = "_type=Patient,Appointment&_typeFilter=Appointment%3Fstatus%3Dbooked"
    manifest, files = bulk.export(f"{BASE}/$export?{query}")
    assert manifest["request"] == f"{BASE}/$export?{query}"
    assert sorted(files) == ["Appointment", "Patient"]
    assert _ids(files, "Appointment") == [f"a-{p}" for p in PATIENTS if p != "p4"]
    # Everything was stored in 2024: nothing changed since 2025.
    _, later = bulk.export(f"{BASE}/$export?_since=2025-01-01T00:00:00Z&_outputFormat=ndjson")
    assert later == {}


def test_patient_and_group_level(bulk: BulkClient) -> None:
    manifest, files = bulk.export(f"{BASE}/Patient/$export")
    assert sorted(files) == ["Appointment", "Patient"]  # patient data only, no directory
    assert manifest["request"] == f"{BASE}/Patient/$export"
    _, files = bulk.export(f"{BASE}/Group/cohort/$export")
    assert _ids(files, "Patient") == MEMBERS
    assert _ids(files, "Appointment") == [f"a-{m}" for m in MEMBERS]


def test_the_token_s_types_only(rig: Rig) -> None:
    bulk = BulkClient(rig.client, backend_token(rig.client, "system/Patient.rs"))
    manifest, files = bulk.export(f"{BASE}/$export")
    assert sorted(files) == ["Patient"]
    manifest, files = bulk.export(f"{BASE}/$export?_type=Patient,Appointment")
    assert [o["type"] for o in manifest["output"]] == ["Patient"]
    (outcome,) = files["OperationOutcome"]
    assert "Appointment" in outcome["issue"][0]["diagnostics"]
    # A scope's ?param= restriction cuts the rows as it cuts a search.
    scoped = "system/Patient.rs?_id=p1,p2 system/Appointment.rs"
    _, files = BulkClient(rig.client, backend_token(rig.client, scoped)).export(f"{BASE}/$export")
    assert _ids(files, "Patient") == ["p1", "p2"]


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("patient", "$export", 403),
        ("frontdesk", "$export", 403),
        ("admin", "$export", 403),
        ("user-scopes", "$export", 403),
        ("no-patient-scope", "Patient/$export", 403),
        ("no-group-scope", "Group/cohort/$export", 403),
        ("none", "$export", 401),
    ],
)
def test_only_backend_services_tokens(rig: Rig, who: str, path: str, status: int) -> None:
    client = rig.client
    headers = {
        "patient": lambda: bearer(mint(client, "patient/*.rs system/*.rs", patient="p0")),
        "frontdesk": lambda: bearer(mint(client, "system/*.rs", role="frontdesk")),
        "admin": lambda: bearer(mint(client, "user/*.cruds system/*.rs", role="admin")),
        "user-scopes": lambda: bearer(mint(client, "user/*.rs")),
        "no-patient-scope": lambda: backend_token(client, "system/Appointment.rs"),
        "no-group-scope": lambda: backend_token(client, "system/Patient.rs"),
        "none": dict,
    }[who]()
    before = _jobs(rig)
    response = client.get(f"{BASE}/{path}", headers=headers | ASYNC)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _jobs(rig) == before


@pytest.mark.parametrize(
    ("query", "headers", "words"),
    [
        ("_outputFormat=text/csv", ASYNC, "_outputFormat"),
        ("_type=Foo", ASYNC, "_type"),
        ("_type=Subscription", ASYNC, "_type"),
        ("_since=yesterday", ASYNC, "_since"),
        ("_since=2024-01-01T00:00:00", ASYNC, "_since"),
        ("_typeFilter=Appointment", ASYNC, "_typeFilter"),
        ("_typeFilter=Appointment%3Fnope%3D1", ASYNC, "_typeFilter"),
        ("_type=Patient&_typeFilter=Appointment%3Fstatus%3Dbooked", ASYNC, "_typeFilter"),
        ("_elements=id", ASYNC, "_elements"),
        ("", {"Accept": "application/fhir+json"}, "respond-async"),
    ],
)
def test_bad_parameters(rig: Rig, query: str, headers: dict[str, str], words: str) -> None:
    before = _jobs(rig)
    token = backend_token(rig.client)
    response = rig.client.get(f"{BASE}/$export?{query}", headers=token | headers)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"] + str(outcome["issue"][0])
    assert _jobs(rig) == before


def test_unknown_group_is_404(bulk: BulkClient, rig: Rig) -> None:
    response = rig.client.get(f"{BASE}/Group/nope/$export", headers=bulk.headers | ASYNC)
    assert response.status_code == 404


def test_status_and_files_answer_the_requester_only(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    manifest = bulk.wait(status_url)
    file_url = manifest["output"][0]["url"]
    other = backend_token(rig.client, client_id="another-ehr")
    for url in (status_url, file_url):
        assert rig.client.get(url, headers=other).status_code == 404
        assert rig.client.get(url).status_code == 401
        assert rig.client.get(url, headers=bulk.headers).status_code == 200
    assert rig.client.delete(status_url, headers=other).status_code == 404
    assert rig.client.get(f"{file_url[: -len('Patient.ndjson')]}Nope.ndjson",
                          headers=bulk.headers).status_code == 404  # fmt: skip


def _parts(rig: Rig, job_id: str) -> int:
    collection = store_of(rig.client).database.db[PARTS]
    return int(call(rig.client, collection.count_documents, {"job": job_id}))


def test_delete_cancels_and_removes_the_files(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export")
    job_id = status_url.rsplit("/", 1)[1]
    manifest = bulk.wait(status_url)
    assert _parts(rig, job_id) > 0
    response = rig.client.delete(status_url, headers=bulk.headers)
    assert response.status_code == 202
    assert _parts(rig, job_id) == 0
    assert rig.client.get(status_url, headers=bulk.headers).status_code == 404
    assert rig.client.get(manifest["output"][0]["url"], headers=bulk.headers).status_code == 404
    assert rig.client.delete(status_url, headers=bulk.headers).status_code == 404


def test_delete_stops_a_running_job(bulk: BulkClient, rig: Rig) -> None:
    """Cancelled at once (before the worker is done, or while it runs): no file stays."""
    status_url = bulk.kick_off(f"{BASE}/$export")
    job_id = status_url.rsplit("/", 1)[1]
    assert rig.client.delete(status_url, headers=bulk.headers).status_code == 202
    time.sleep(1.0)  # time for a worker that had the job to reach its next step
    assert _parts(rig, job_id) == 0
    assert rig.client.get(status_url, headers=bulk.headers).status_code == 404


def test_files_expire(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    job_id = status_url.rsplit("/", 1)[1]
    manifest = bulk.wait(status_url)
    jobs = store_of(rig.client).database.db[JOBS]
    job = call(rig.client, jobs.find_one, {"_id": job_id})
    assert job["expires"] > time.time() + rig.settings.export_file_lifetime - 60
    # The lifetime passes (moved, not waited for).
    call(rig.client, jobs.update_one, {"_id": job_id}, {"$set": {"expires": time.time() - 1}})
    assert rig.client.get(status_url, headers=bulk.headers).status_code == 404
    assert rig.client.get(manifest["output"][0]["url"], headers=bulk.headers).status_code == 404
    from fhir_server.store.export_store import ExportStore

    exports = ExportStore(store_of(rig.client).database)
    assert call(rig.client, exports.purge_expired, time.time()) >= 1
    assert _parts(rig, job_id) == 0
    assert call(rig.client, jobs.find_one, {"_id": job_id}) is None


def test_groups_of_a_practitioner_s_and_a_location_s_patients(bulk: BulkClient, rig: Rig) -> None:
    env = {
        "FHIR_MONGODB_URI": str(rig.settings.mongodb_uri),
        "FHIR_DATABASE": rig.settings.database,
        "FHIR_PUBLIC_BASE_URL": BASE,
    }
    runner = CliRunner()
    done = runner.invoke(app, ["export", "group", "--practitioner", "dr"], env=env)
    assert done.exit_code == 0, done.output
    assert "Group/practitioner-dr-patients (version 1): 5 patients" in done.output
    _, files = bulk.export(f"{BASE}/Group/practitioner-dr-patients/$export")
    assert _ids(files, "Patient") == PATIENTS
    done = runner.invoke(app, ["export", "group", "--location", "room"], env=env)
    assert done.exit_code == 0 and "1 patients" in done.output, done.output
    _, files = bulk.export(f"{BASE}/Group/location-room-patients/$export?_type=Patient")
    assert _ids(files, "Patient") == ["p2"]
    again = runner.invoke(app, ["export", "group", "--location", "room"], env=env)
    assert "(version 2)" in again.output  # the same Group brought up to date
    for args in (["--practitioner", "nobody"], ["--practitioner", "dr", "--location", "room"]):
        refused = runner.invoke(app, ["export", "group", *args], env=env)
        assert refused.exit_code == 1, refused.output


def test_a_backend_token_creates_a_group_through_the_api(rig: Rig) -> None:
    headers = backend_token(rig.client, "system/*.rs system/Group.c")
    group = {"resourceType": "Group", "type": "person", "actual": True,
             "member": [{"entity": {"reference": "Patient/p3"}}]}  # fmt: skip
    created = rig.client.post(f"{BASE}/Group", json=group, headers=headers)
    assert created.status_code == 201, created.text
    _, files = BulkClient(rig.client, headers).export(
        f"{BASE}/Group/{created.json()['id']}/$export"
    )
    assert _ids(files, "Patient") == ["p3"] and _ids(files, "Appointment") == ["a-p3"]


def test_the_capability_statement_lists_the_three_operations(bulk: BulkClient, rig: Rig) -> None:
    rest = rig.client.get(f"{BASE}/metadata").json()["rest"][0]
    canonical = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
    assert {"name": "export", "definition": f"{canonical}/export"} in rest["operation"]
    by_type = {r["type"]: r.get("operation", []) for r in rest["resource"]}
    assert {"name": "export", "definition": f"{canonical}/patient-export"} in by_type["Patient"]
    assert {"name": "export", "definition": f"{canonical}/group-export"} in by_type["Group"]
    for name in ("export", "patient-export", "group-export"):
        definition = rig.client.get(f"{BASE}/OperationDefinition/{name}", headers=bulk.headers)
        definition = definition.json()
        assert definition["url"] == f"{canonical}/{name}" and definition["code"] == "export"
