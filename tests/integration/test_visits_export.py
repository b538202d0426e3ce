"""A billing system pulls the visits' records with `$export`, as a bulk client does, from a
real worker: the Encounter and ChargeItem of a fulfilled visit come out as R4 NDJSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE
from tests.integration.bulk_support import BulkClient, Rig, backend_token, start_rig
from tests.integration.scheduling_setup import hours_from_now
from tests.integration.visits_support import billed_clinic, booked, charges_of, set_status, visit_of


@pytest.fixture(scope="module")
def rig(settings_factory: Callable[..., Settings]) -> Iterator[Rig]:
    for running in start_rig(settings_factory):
        token = backend_token(running.client, "system/*.cruds", client_id="clinic")
        running.client.headers.update(token)
        yield running


def test_a_billing_system_exports_the_visits_records(rig: Rig) -> None:
    appointment = booked(rig.client, billed_clinic(rig.client), hours_from_now(3))
    assert set_status(rig.client, appointment["id"], "fulfilled").status_code == 200
    encounter = visit_of(rig.client, appointment["id"])
    charge = charges_of(rig.client, appointment["id"])["99213"]

    billing = BulkClient(
        rig.client,
        backend_token(rig.client, "system/Patient.rs system/ChargeItem.rs system/Encounter.rs"),
    )
    manifest, files = billing.export(f"{BASE}/Patient/$export?_type=Encounter,ChargeItem")
    assert manifest["error"] == [] and sorted(files) == ["ChargeItem", "Encounter"]
    assert files["Encounter"] == [encounter] and files["ChargeItem"] == [charge]
