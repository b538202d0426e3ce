"""A worker killed (SIGKILL) in the middle of an export: no half manifest, and a new worker
resumes the job from its last checkpoint to a complete export, every resource once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fhir_server.settings import Settings
from fhir_server.store.export_store import JOBS
from tests.integration.auth_helpers import BASE, call
from tests.integration.bulk_support import (
    BulkClient,
    Rig,
    backend_token,
    insert,
    start_rig,
    store_of,
)
from tests.integration.notify_support import wait_until

pytestmark = pytest.mark.slow
COUNT = 6000
LEASE = 2


@pytest.fixture(scope="module")
def rig(settings_factory: Callable[..., Settings]) -> Iterator[Rig]:
    # Small parts (many checkpoints), one long slice: the kill lands inside a running slice.
    yield from start_rig(
        settings_factory, export_part_size=10, export_lease=LEASE, export_slice=600.0
    )


def _job(rig: Rig, job_id: str) -> dict[str, Any]:
    jobs = store_of(rig.client).database.db[JOBS]
    found: dict[str, Any] = call(rig.client, jobs.find_one, {"_id": job_id})
    return found


def test_a_killed_worker_s_export_is_resumed(rig: Rig) -> None:
    ids = [f"crash-{i:05d}" for i in range(COUNT)]
    insert(rig.client, [{"resourceType": "Patient", "id": i, "gender": "other"} for i in ids])
    bulk = BulkClient(rig.client, backend_token(rig.client))
    status_url = bulk.kick_off(f"{BASE}/$export?_type=Patient")
    job_id = status_url.rsplit("/", 1)[1]

    wait_until(lambda: _job(rig, job_id)["counted"] >= 300, timeout=60, every=0.01)
    rig.worker.kill()
    stopped = _job(rig, job_id)
    assert stopped["status"] == "in-progress" and 0 < stopped["counted"] < COUNT

    # Nobody works on it now: the status says "in progress", never a partial manifest.
    time.sleep(LEASE + 0.5)
    response = rig.client.get(status_url, headers=bulk.headers)
    assert response.status_code == 202 and response.content == b""

    rig.worker.start()  # a restarted worker looks for stalled jobs as it starts
    manifest = bulk.wait(status_url, timeout=180)
    resumed = _job(rig, job_id)
    assert resumed["lease_owner"] != stopped["lease_owner"]
    files = bulk.download(manifest)
    exported = [r["id"] for r in files["Patient"]]
    assert len(exported) == COUNT and sorted(exported) == ids  # each once, none missing
