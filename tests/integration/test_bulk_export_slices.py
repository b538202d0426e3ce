"""An export handed back to the queue after every part (a tiny `export_slice`): each slice
resumes where the last checkpoint left it, and the files hold every resource once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, call, create
from tests.integration.bulk_support import (
    BulkClient,
    Rig,
    backend_token,
    insert,
    start_rig,
    store_of,
)

COUNT = 25


@pytest.fixture(scope="module")
def rig(settings_factory: Callable[..., Settings]) -> Iterator[Rig]:
    yield from start_rig(settings_factory, export_part_size=3, export_slice=0.001)


def test_every_slice_resumes_from_its_checkpoint(rig: Rig) -> None:
    ids = [f"s-{i:03d}" for i in range(COUNT)]
    insert(rig.client, [{"resourceType": "Patient", "id": i, "gender": "other"} for i in ids])
    bulk = BulkClient(rig.client, backend_token(rig.client))
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient,Practitioner")
    # Written after the kick-off: not in this export (its transactionTime is earlier).
    late = create(rig.client, {"resourceType": "Practitioner", "name": [{"family": "Late"}]})
    manifest = bulk.wait(status_url)
    files = bulk.download(manifest)
    assert [r["id"] for r in files["Patient"]] == ids  # in order, each once
    assert "Practitioner" not in files and late
    parts = store_of(rig.client).database.db["bulk_export_parts"]
    job_id = status_url.rsplit("/", 1)[1]
    assert call(rig.client, parts.count_documents, {"job": job_id}) == -(-COUNT // 3)
