"""The audit journal on real files: what the relay takes, whose files it sweeps, rotation;
and the events it carries are valid R4 AuditEvents."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from fhir_server.audit import journal as journal_module
from fhir_server.audit.events import Access, Actor, rest_event
from fhir_server.audit.journal import Journal


def _event(n: int) -> dict[str, object]:
    return {"resourceType": "AuditEvent", "id": f"e{n}", "recorded": "2026-01-01T00:00:00Z"}


def test_pending_lines_are_taken_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(_event(1))
    journal.append(_event(2))
    batch = journal.pending()
    assert [e["id"] for e in batch.events] == ["e1", "e2"]
    journal.append(_event(3))  # written while the batch was being stored
    journal.done(batch)
    assert [e["id"] for e in journal.pending().events] == ["e3"]
    journal.done(journal.pending())
    assert journal.pending().events == []
    journal.close()
    assert list(tmp_path.iterdir()) == [], "a fully stored journal is removed at close"


def test_only_dead_processes_files_are_swept(tmp_path: Path) -> None:
    mine, alive = Journal(tmp_path), Journal(tmp_path)  # `alive` holds its lock
    alive.append(_event(1))
    dead = tmp_path / "dead.jsonl"
    dead.write_bytes(orjson.dumps(_event(2)) + b"\n" + b'{"resourceType": "Audit')  # cut line
    found = list(mine.orphans())
    assert [(b.path, [e["id"] for e in b.events]) for b, _ in found] == [(dead, ["e2"])]
    for batch, fd in found:
        Journal.forget(batch, fd)
    assert not dead.exists() and alive.path.exists()
    alive.close()  # not stored: kept for a later relay
    left = list(mine.orphans())
    assert [[e["id"] for e in b.events] for b, _ in left] == [["e1"]]
    for _, fd in left:
        Journal.release(fd)
    mine.close()


def test_a_large_stored_journal_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 10)
    journal = Journal(tmp_path)
    first = journal.path
    journal.append(_event(1))
    journal.done(journal.pending())
    assert journal.path != first and not first.exists()
    journal.append(_event(2))
    assert [e["id"] for e in journal.pending().events] == ["e2"]
    assert os.listdir(tmp_path) == [journal.path.name]


def test_rest_events_are_valid_r4() -> None:
    actor = Actor("Practitioner/1", "dr", "app", "practitioner", "10.0.0.1")
    access = Access(
        "search",
        200,
        resources=("Appointment/a",),
        patients=("Patient/p",),
        query="actor=Practitioner%2F1",
    )
    event = rest_event(actor, access, event_id="x", recorded="2026-01-01T00:00:00.000000Z")
    AuditEvent.model_validate(event)
    assert base64.b64decode(event["entity"][-1]["query"]) == b"actor=Practitioner%2F1"
    refused = rest_event(
        actor, Access("delete", 403, detail="no"), event_id="y", recorded="2026-01-01T00:00:00Z"
    )
    AuditEvent.model_validate(refused)
    assert (refused["action"], refused["outcome"], refused["outcomeDesc"]) == ("D", "4", "no")
    failed = rest_event(
        actor,
        Access("operation-type", 500, operation="$find"),
        event_id="z",
        recorded="2026-01-01T00:00:00Z",
    )
    assert failed["outcome"] == "8" and failed["subtype"][1]["code"] == "$find"
