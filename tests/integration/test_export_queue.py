"""Bulk export runs on its own queue: a booking confirmation is sent while an export slice
is still running, by the notifications worker, instead of waiting behind the slice.

Two real workers, one per queue, as `fhir-server serve` starts them (and Docker Compose
runs `worker` and `exporter`); a real SMTP server receives the confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications.celery_app import EXPORTS_QUEUE, NOTIFICATIONS_QUEUE
from fhir_server.settings import Settings
from tests.integration.auth_helpers import mint
from tests.integration.bulk_support import BulkClient, backend_token, insert
from tests.integration.notify_support import (
    Running,
    Worker,
    patient_with_email,
    short_tmp,
    start_all,
    stop_all,
    wait_until,
)
from tests.integration.scheduling_setup import (
    HEADERS,
    appointment,
    hours_from_now,
    make_clinic,
    make_slot,
)

# Enough one-resource parts that the slice lasts many seconds on the embedded store.
PATIENTS = 1000


@pytest.fixture(scope="module")
def env(settings_factory: Callable[..., Settings]) -> Iterator[Running]:
    running = start_all(
        settings_factory,
        queues=NOTIFICATIONS_QUEUE,
        auth_enabled=True,
        export_part_size=1,
        export_slice=600,  # one slice for the whole export
        export_lease=600,
    )
    exporter = Worker(running.rig.settings, short_tmp(), EXPORTS_QUEUE)
    exporter.start()
    yield running
    exporter.stop()
    stop_all(running)


def _progress(api: TestClient, status_url: str, headers: dict[str, str]) -> int:
    """Resources the running export has written so far (-1 once it is finished)."""
    response = api.get(status_url, headers=headers)
    if response.status_code != 202:
        return -1
    progress = response.headers["x-progress"]  # "queued" or "N resources written, ..."
    return int(progress.split()[0]) if "written" in progress else 0


def test_a_confirmation_is_sent_while_an_export_slice_runs(env: Running) -> None:
    with TestClient(create_app(env.rig.settings)) as api:
        api.headers["Authorization"] = f"Bearer {mint(api, 'system/*.cruds')}"
        insert(api, [{"resourceType": "Patient", "id": f"q-{i:05d}"} for i in range(PATIENTS)])
        bulk = BulkClient(api, backend_token(api))
        status_url = bulk.kick_off("/fhir/$export?_type=Patient")
        wait_until(lambda: _progress(api, status_url, bulk.headers) != 0, timeout=120)
        assert _progress(api, status_url, bulk.headers) > 0, "the slice is running"

        clinic = make_clinic(api)
        pid, address = patient_with_email(api, "queue", "Q")
        slot = make_slot(api, clinic["schedule"], hours_from_now(50))
        booked = api.post("/fhir/Appointment", json=appointment(pid, slot), headers=HEADERS)
        assert booked.status_code == 201, booked.text
        [mail] = wait_until(lambda: env.smtp.to(address), timeout=60)
        assert " ".join(str(mail["Subject"]).split()).startswith("Your appointment is booked")

        written = _progress(api, status_url, bulk.headers)
        assert 0 < written < PATIENTS, "the confirmation came while the slice still ran"
        assert api.delete(status_url, headers=bulk.headers).status_code == 202  # done with it
