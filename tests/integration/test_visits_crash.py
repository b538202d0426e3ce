"""A visit's outcome killed at any store command (embedded store, no transactions): after
recovery the Appointment's status, its Encounter and its charge are all there or none is,
and retrying the request then bills exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.notifications import celery_app, changes
from fhir_server.scheduling import booking
from fhir_server.settings import Settings
from fhir_server.store import config_cache, recovery
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore
from fhir_server.visits import billing, recorder
from fhir_server.visits.records import charge_id, encounter_id
from tests.conftest import BASE
from tests.integration.crash_support import (
    Clinic,
    Crash,
    Fuse,
    crashing,
    seed,
    sweep,
    violations,
)

CODE = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}


@pytest.fixture(autouse=True)
def recorded_visits(settings_factory: Callable[..., Settings]) -> Iterator[None]:
    celery_app.configure(settings_factory(redis_url="redis://127.0.0.1:1/0"))  # no broker
    changes.install()  # the booking's messages and the visit's records, as the app's start does
    recorder.install()
    config_cache.configure(5.0)
    yield


def _caller() -> booking.Caller:
    return booking.Caller(now=datetime.now(UTC), role="frontdesk")


async def _booked(mongo_uri: str) -> tuple[ResourceStore, Clinic, str]:
    """A fresh database with a booking for a service billed as CODE."""
    database = await connect(mongo_uri, f"t{uuid.uuid4().hex[:12]}")
    store = ResourceStore(database, indexer=ResourceIndexer(BASE))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    clinic = await seed(store, start)
    extension = [{"url": billing.VISIT_CODE, "valueCodeableConcept": CODE}]
    service = await store.create({"resourceType": "HealthcareService", "extension": extension})
    schedule = await store.read("Schedule", clinic.slots[0]["schedule"]["reference"][9:])
    actors = [{"reference": f"HealthcareService/{service.id}"}]
    await store.update({**(schedule.resource or {}), "actor": actors})
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{clinic.slots[0]['id']}"}],
        "participant": [{"actor": {"reference": f"Patient/{clinic.patients[0]}"}}],
    }
    aid = uuid.uuid4().hex
    clinic.appointments[aid] = clinic.patients[0]
    await booking.book(store, body, _caller(), rid=aid)
    return store, clinic, aid


async def _fulfil(store: ResourceStore, aid: str) -> None:
    current = await store.read("Appointment", aid)
    await booking.change(
        store, current, {**(current.resource or {}), "status": "fulfilled"}, _caller()
    )


async def _visit(store: ResourceStore, aid: str) -> tuple[Any, Any, Any]:
    """(Appointment status, Encounter status, charge status); None where there is none."""

    async def status(rtype: str, rid: str) -> Any:
        found = await store.current(rtype, rid)
        return (found.resource or {}).get("status") if found else None

    return (
        await status("Appointment", aid),
        await status("Encounter", encounter_id(aid)),
        await status("ChargeItem", charge_id(aid, billing.VISIT)),
    )


async def _histories_whole(store: ResourceStore, aid: str) -> bool:
    """The Encounter's and the charge's current rows are their latest history rows."""
    visit = (("Encounter", encounter_id(aid)), ("ChargeItem", charge_id(aid, billing.VISIT)))
    for rtype, rid in visit:
        found = await store.current(rtype, rid)
        rows = await store.history.count_documents({"type": rtype, "id": rid})
        if rows != (found.version if found else 0):
            return False
    return True


DONE = ("fulfilled", "finished", "billable")
NOT_DONE = ("booked", None, None)


def test_an_outcome_killed_at_any_command_bills_once_after_recovery_and_retry(
    mongo_uri: str,
) -> None:
    outcomes = set()

    async def one(at: int, after: bool) -> bool:
        store, clinic, aid = await _booked(mongo_uri)
        try:
            fuse = Fuse(at, after)
            try:
                await _fulfil(crashing(store, fuse), aid)
            except Crash:
                await recovery.settle(store.database, older_than=0)
            visit = await _visit(store, aid)
            assert visit in (DONE, NOT_DONE), (at, after, visit)
            # A fulfilled visit keeps its Slot busy, which the booking invariants (made for
            # active Appointments only) would call a leak: the rest of them must hold.
            broken = [v for v in await violations(store, clinic) if not v.startswith("Slot/")]
            assert broken == [], (at, after)
            assert await _histories_whole(store, aid), (at, after)
            outcomes.add(visit)
            if visit == NOT_DONE:  # the client retries the request it got no answer to
                await _fulfil(store, aid)
            assert await _visit(store, aid) == DONE
            charge = await store.current("ChargeItem", charge_id(aid, billing.VISIT))
            assert charge is not None and charge.version == 1
            return fuse.blown
        finally:
            await store.database.client.drop_database(store.database.db.name)
            await store.database.close()

    sweep(one)
    assert outcomes == {DONE, NOT_DONE}  # both recovery paths were taken: forward and back
