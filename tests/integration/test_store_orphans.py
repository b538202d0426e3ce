"""A writer that dies between its history insert and its current-row write (the worker's
batched message claims, which write history first outside the intent log) leaves a history row
no current row reached. Its key must not lock the resource forever. A unit of work writes the
current row's compare-and-set first and its history rows after it (`store.intents`), so the
version that became current takes such a row's key at any age, on the plain write path and a
booking request's alike; the worker's batched claim reclaims one once older than the grace
period (a young one may be a claim still in flight and is left alone).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.store.clock import to_instant
from fhir_server.store.message_batches import MessageBatches
from fhir_server.store.request_store import RequestStore
from fhir_server.store.resources import ORPHAN_GRACE, ResourceStore, Version, history_row
from tests.integration.store_support import run


async def leave_orphan(store: ResourceStore, found: Version, age: timedelta) -> None:
    """What a writer killed after its first write leaves: history for the next version only."""
    when = to_instant(datetime.now(UTC) - age)
    body = {**(found.resource or {}), "meta": {"versionId": str(found.version + 1)}}
    dead = Version(found.resource_type, found.id, found.version + 1, when, False, body)
    await store.history.insert_one(history_row(dead))


def patient(family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


OLD = ORPHAN_GRACE * 2


def test_an_old_orphan_is_reclaimed_by_the_next_update(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        created = await store.create(patient("Before"), rid="p1")
        await leave_orphan(store, created, OLD)
        written, _ = await store.update({**patient("After"), "id": "p1"})
        assert written.version == 2
        assert (await store.vread("Patient", "p1", 2)).resource == written.resource
        assert (written.resource or {})["name"][0]["family"] == "After"

    run(mongo_uri, scenario)


def test_a_young_orphan_gives_way_to_the_version_that_becomes_current(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        created = await store.create(patient("Before"), rid="p1")
        await leave_orphan(store, created, timedelta(seconds=1))
        written, _ = await store.update({**patient("After"), "id": "p1"})
        assert written.version == 2
        assert (await store.vread("Patient", "p1", 2)).resource == written.resource
        assert await store.history.count_documents({"id": "p1"}) == 2  # the orphan is replaced

    run(mongo_uri, scenario)


def test_a_version_that_became_current_is_never_taken_for_an_orphan(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        created = await store.create(patient("Kept"), rid="p1")
        assert await store.reclaim_orphans(["Patient/p1/1"]) == set()
        assert (await store.vread("Patient", "p1", 1)).resource == created.resource

    run(mongo_uri, scenario)


def test_a_booking_requests_flush_reclaims_an_old_orphan(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        slot = {"resourceType": "Slot", "status": "free", "start": "2026-01-05T09:00:00Z"}
        created = await store.create(slot, rid="s1")
        await leave_orphan(store, created, OLD)
        view = RequestStore(store)
        async with view.unit_of_work() as work:
            await view.update({**slot, "status": "busy", "id": "s1"}, uow=work)
            await view.flush(work)
        assert ((await store.vread("Slot", "s1", 2)).resource or {})["status"] == "busy"
        assert ((await store.read("Slot", "s1")).resource or {})["status"] == "busy"

    run(mongo_uri, scenario)


def test_the_workers_batched_claim_reclaims_an_old_orphan(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        message = {"resourceType": "Communication", "status": "preparation"}
        old, young = await store.create(message), await store.create(message)
        await leave_orphan(store, old, OLD)
        await leave_orphan(store, young, timedelta(seconds=1))
        claims = [(v, {**(v.resource or {}), "status": "in-progress"}) for v in (old, young)]
        written = await MessageBatches(store).update_many(claims)
        assert written[0] is not None and written[0].version == 2
        assert written[1] is None  # possibly a live claim: not taken
        assert ((await store.read("Communication", old.id)).resource or {})["status"] == (
            "in-progress"
        )

    run(mongo_uri, scenario)
