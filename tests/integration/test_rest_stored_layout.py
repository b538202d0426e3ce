"""Rows written by the earlier layout (body as a `resource` sub-document) still serve.

The store now keeps the body as JSON text in `body`; a database written
before that change must read, search, page through history, update and
delete exactly as before, without a migration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from fhir_server.store.resources import BODY, ResourceStore
from tests.integration.auth_helpers import call

UPDATED = "2026-11-25T09:30:00.250000Z"
LEGACY = {
    "resourceType": "Patient",
    "id": "legacy-1",
    "meta": {"versionId": "1", "lastUpdated": UPDATED},
    "name": [{"family": "Ältere", "given": ["Ada"]}],
    "birthDate": "1970-02-03",
}


@pytest.fixture()
def legacy(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    """A client whose database holds one Patient stored the earlier way."""
    with TestClient(create_app(settings_factory())) as client:
        store: ResourceStore = client.app.state.services.store  # type: ignore[attr-defined]

        async def write_old_rows() -> None:
            await store.collection("Patient").insert_one(
                {
                    "_id": "legacy-1",
                    "resource": LEGACY,
                    "version": 1,
                    "updated": UPDATED,
                    "deleted": False,
                    "idx": store.indexer(LEGACY),
                }
            )
            await store.history.insert_one(
                {
                    "_id": "Patient/legacy-1/1",
                    "type": "Patient",
                    "id": "legacy-1",
                    "version": 1,
                    "updated": UPDATED,
                    "at": "20261125093000250000",
                    "deleted": False,
                    "method": "POST",
                    "resource": LEGACY,
                }
            )

        call(client, write_old_rows)
        yield client


def _row(client: TestClient) -> dict[str, Any]:
    store: ResourceStore = client.app.state.services.store  # type: ignore[attr-defined]
    found: dict[str, Any] = call(client, store.collection("Patient").find_one, {"_id": "legacy-1"})
    return found


def test_read_vread_search_and_history_serve_the_old_row(legacy: TestClient) -> None:
    read = legacy.get("/fhir/Patient/legacy-1")
    assert read.status_code == 200, read.text
    assert read.json() == LEGACY
    assert read.headers["etag"] == 'W/"1"'
    assert legacy.get("/fhir/Patient/legacy-1/_history/1").json() == LEGACY
    found = legacy.get("/fhir/Patient?family=altere&birthdate=1970-02").json()
    assert [e["resource"] for e in found["entry"]] == [LEGACY]
    history = legacy.get("/fhir/Patient/legacy-1/_history").json()
    assert [e["resource"] for e in history["entry"]] == [LEGACY]


def test_update_of_an_old_row_writes_the_new_layout(legacy: TestClient) -> None:
    changed = {**LEGACY, "gender": "female"}
    response = legacy.put("/fhir/Patient/legacy-1", json=changed)
    assert response.status_code == 200, response.text
    row = _row(legacy)
    assert "resource" not in row and isinstance(row[BODY], str)
    assert row["version"] == 2
    read = legacy.get("/fhir/Patient/legacy-1").json()
    assert read["gender"] == "female" and read["meta"]["versionId"] == "2"
    old = legacy.get("/fhir/Patient/legacy-1/_history/1").json()
    assert old == LEGACY, "version 1 is still served from its old history row"


def test_delete_of_an_old_row(legacy: TestClient) -> None:
    assert legacy.delete("/fhir/Patient/legacy-1").status_code in (200, 204)
    assert legacy.get("/fhir/Patient/legacy-1").status_code == 410
    assert legacy.get("/fhir/Patient?family=altere").json().get("entry", []) == []
    row = _row(legacy)
    assert row["deleted"] is True and row["version"] == 2
    history = legacy.get("/fhir/Patient/legacy-1/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
