"""Every access of a token to a bulk export's status URL and files is in the audit trail,
answered or refused, found as an admin finds it: `GET /fhir/AuditEvent?subtype=...`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from fhir_server.settings import Settings
from fhir_server.store.export_store import JOBS
from tests.integration.auth_helpers import BASE, audit_events, bearer, call, mint
from tests.integration.bulk_support import (
    BulkClient,
    Rig,
    backend_token,
    insert,
    start_rig,
    store_of,
)

JOB = "urn:fhir-server:bulk-export"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
PATIENTS = [
    {"resourceType": "Patient", "id": f"p{i}", "name": [{"family": f"Fam{i}"}]} for i in range(3)
]


@pytest.fixture(scope="module")
def rig(settings_factory: Callable[..., Settings]) -> Iterator[Rig]:
    for running in start_rig(settings_factory):
        insert(running.client, PATIENTS)
        yield running


@pytest.fixture
def bulk(rig: Rig) -> BulkClient:
    return BulkClient(rig.client, backend_token(rig.client))


def job_events(rig: Rig, job_id: str) -> list[dict[str, Any]]:
    """The export's AuditEvents, its kick-off first, as an admin searches them."""
    audit_events(rig.client)  # relayed now
    admin = bearer(mint(rig.client, "user/*.rs", role="admin"))
    found = rig.client.get(
        f"{BASE}/AuditEvent",
        params={"subtype": "$export", "_sort": "date", "_count": "100"},
        headers=admin,
    )
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json().get("entry", [])]
    assert all("$export" in [s["code"] for s in e["subtype"]] for e in events)
    return [e for e in events if job_id in named(e)]


def named(event: dict[str, Any]) -> list[str]:
    """The identifiers of the export's job and files an event names."""
    return [
        e["what"]["identifier"]["value"]
        for e in event.get("entity", [])
        if e.get("what", {}).get("identifier", {}).get("system") == JOB
    ]


def interaction(event: dict[str, Any]) -> str:
    codes = [s["code"] for s in event["subtype"] if s["system"] == INTERACTION]
    assert [s["code"] for s in event["subtype"] if s["code"] == "$export"] == ["$export"]
    return codes[0]


def file_types(event: dict[str, Any]) -> list[str]:
    return [e["type"]["code"] for e in event["entity"] if "type" in e and "role" not in e]


def client_of(event: dict[str, Any]) -> str:
    [app] = [a for a in event["agent"] if not a["requestor"]]
    value: str = app["who"]["identifier"]["value"]
    return value


def test_poll_manifest_download_and_cancel_each_leave_one_event(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    job_id = status_url.rsplit("/", 1)[1]
    polls = []
    while not polls or polls[-1] == 202:
        polls.append(rig.client.get(status_url, headers=bulk.headers).status_code)
        time.sleep(0.1)
    assert polls[-1] == 200 and set(polls) <= {200, 202}
    manifest = rig.client.get(status_url, headers=bulk.headers).json()
    [output] = manifest["output"]
    downloaded = rig.client.get(output["url"], headers=bulk.headers)
    assert downloaded.status_code == 200
    assert rig.client.delete(status_url, headers=bulk.headers).status_code == 202

    events = job_events(rig, job_id)
    assert len(events) == len(polls) + 4, [interaction(e) for e in events]
    for event in events:
        AuditEvent.model_validate(event)
        assert event["type"]["code"] == "rest" and client_of(event) == "ehr"
        assert event["agent"][0]["network"]["address"] == "testclient"
        assert named(event)[0] == job_id
        assert not any("Fam" in str(e) or "Bearer" in str(e) for e in event["entity"])
    kick_off, *reads, download, cancel = events
    # The kick-off names the job as every later access does: one identifier joins them.
    assert (interaction(kick_off), kick_off["action"], kick_off["outcome"]) == (
        "operation",
        "E",
        "0",
    )
    assert named(kick_off) == [job_id] and status_url.endswith(f"/bulk-export/{job_id}")
    [started] = [e for e in kick_off["entity"] if "what" in e and "identifier" in e["what"]]
    assert started == download["entity"][0]
    assert [(interaction(e), e["action"], e["outcome"]) for e in reads] == [("read", "R", "0")] * (
        len(polls) + 1
    )
    assert all(file_types(e) == [] for e in reads)
    assert (interaction(download), download["outcome"], file_types(download)) == (
        "read",
        "0",
        ["Patient"],
    )
    assert named(download) == [job_id, f"{job_id}/Patient.ndjson"]
    job_entity = download["entity"][0]
    assert job_entity["role"]["code"] == "20" and job_entity["type"]["code"] == "2"
    assert (interaction(cancel), cancel["action"], cancel["outcome"]) == ("delete", "D", "0")
    # After the cancel, the job is gone: the poll is refused, and recorded as such.
    assert rig.client.get(status_url, headers=bulk.headers).status_code == 404
    [*_, gone] = job_events(rig, job_id)
    assert gone["outcome"] == "4" and gone["outcomeDesc"] == "unknown or cancelled job"


def test_another_client_s_attempts_are_refused_and_recorded(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    job_id = status_url.rsplit("/", 1)[1]
    file_url = bulk.wait(status_url)["output"][0]["url"]
    before = len(job_events(rig, job_id))
    other = backend_token(rig.client, client_id="prober")
    for answer in (
        rig.client.get(file_url, headers=other),
        rig.client.get(status_url, headers=other),
        rig.client.delete(status_url, headers=other),
    ):
        assert answer.status_code == 404
        assert "another" not in answer.text  # the caller learns nothing of the job
    refused = job_events(rig, job_id)[before:]
    assert [client_of(e) for e in refused] == ["prober"] * 3
    assert [(e["outcome"], e["outcomeDesc"]) for e in refused] == [
        ("4", "another client's job")
    ] * 3
    assert [(interaction(e), file_types(e)) for e in refused] == [
        ("read", ["Patient"]),
        ("read", []),
        ("delete", []),
    ]
    assert rig.client.get(file_url, headers=bulk.headers).status_code == 200  # still there


def test_a_401_is_not_recorded(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    job_id = status_url.rsplit("/", 1)[1]
    file_url = bulk.wait(status_url)["output"][0]["url"]
    before = len(job_events(rig, job_id))
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        assert rig.client.get(file_url, headers=headers).status_code == 401
        assert rig.client.get(status_url, headers=headers).status_code == 401
        assert rig.client.delete(status_url, headers=headers).status_code == 401
    assert len(job_events(rig, job_id)) == before
    # The same requests with the token are recorded: the count above could have moved.
    assert rig.client.get(file_url, headers=bulk.headers).status_code == 200
    assert len(job_events(rig, job_id)) == before + 1


def test_a_failed_export_s_poll_is_recorded_as_a_failure(bulk: BulkClient, rig: Rig) -> None:
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    job_id = status_url.rsplit("/", 1)[1]
    bulk.wait(status_url)
    jobs = store_of(rig.client).database.db[JOBS]
    call(rig.client, jobs.update_one, {"_id": job_id}, {"$set": {"status": "error"}})
    assert rig.client.get(status_url, headers=bulk.headers).status_code == 500
    [*_, failed] = job_events(rig, job_id)
    assert (interaction(failed), failed["outcome"]) == ("read", "8")


def test_probing_unknown_jobs_is_recorded_bounded(bulk: BulkClient, rig: Rig) -> None:
    """An id or file name made up by the caller is recorded as sent, cut to 64 characters;
    a file name that is no resource type is left out."""
    made_up = "f" * 100
    for name in ("Patient.ndjson", "1 OR 1=1.ndjson"):
        probe = rig.client.get(f"{BASE}/bulk-export/{made_up}/{name}", headers=bulk.headers)
        assert probe.status_code == 404
    first, second = job_events(rig, made_up[:64])
    assert [(e["outcome"], e["outcomeDesc"]) for e in (first, second)] == [
        ("4", "unknown or cancelled job")
    ] * 2
    assert named(first) == [made_up[:64], f"{made_up[:64]}/Patient.ndjson"]
    assert file_types(first) == ["Patient"]
    assert named(second) == [made_up[:64]] and file_types(second) == []
