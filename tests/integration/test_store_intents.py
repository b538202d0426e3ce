"""Units of work on the embedded store (no transactions) survive a crash at any command.

Each test kills a booking at every one of its store commands in turn (before the store ran
it, and after), runs recovery as a restart would, and checks the invariants of
`crash_support.violations`: the booking is all there or not there at all.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.fhir.errors import Conflict
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.notifications import celery_app, changes
from fhir_server.scheduling import booking
from fhir_server.scheduling.idempotent import once
from fhir_server.settings import Settings
from fhir_server.store import config_cache, intents, recovery
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore, Version
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

_NO_BROKER = "redis://127.0.0.1:1/0"
Operation = Callable[[ResourceStore, Clinic], Awaitable[Any]]


@pytest.fixture(autouse=True)
def no_broker(settings_factory: Callable[..., Settings]) -> Iterator[None]:
    celery_app.configure(settings_factory(redis_url=_NO_BROKER))
    changes.install()  # the booking's messages, as the app's start does
    config_cache.configure(5.0)
    yield


def _caller() -> booking.Caller:
    return booking.Caller(now=datetime.now(UTC), role="staff")


def _body(clinic: Clinic, slot: int = 0, patient: int = 0) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{clinic.slots[slot]['id']}"}],
        "participant": [{"actor": {"reference": f"Patient/{clinic.patients[patient]}"}}],
    }


async def _fresh(mongo_uri: str) -> tuple[ResourceStore, Clinic]:
    database = await connect(mongo_uri, f"t{uuid.uuid4().hex[:12]}")
    store = ResourceStore(database, indexer=ResourceIndexer(BASE))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    return store, await seed(store, start)


async def _book(store: ResourceStore, clinic: Clinic, aid: str, **options: Any) -> Version:
    clinic.appointments[aid] = clinic.patients[0]
    return await booking.book(store, _body(clinic), _caller(), rid=aid, **options)


def _every_crash_point(
    mongo_uri: str, before: Operation | None, operation: Operation
) -> tuple[int, int]:
    """Kill `operation` at each of its commands (before and after each); after recovery the
    invariants hold every time. (times its writes stayed, times they went)."""
    kept = dropped = 0

    async def one(at: int, after: bool) -> bool:
        nonlocal kept, dropped
        store, clinic = await _fresh(mongo_uri)
        try:
            if before is not None:
                await before(store, clinic)
            expected_violations = await violations(store, clinic)
            assert expected_violations == []
            fuse = Fuse(at, after)
            try:
                await operation(crashing(store, fuse), clinic)
            except Crash:
                await recovery.settle(store.database, older_than=0)
            assert await violations(store, clinic) == [], (at, after)
            stored = await store.collection("store_intents").count_documents({})
            assert stored == 0 or not fuse.blown  # every cut-short unit settled
            latest = list(clinic.appointments)[-1]
            exists = await store.current("Appointment", latest) is not None
            kept, dropped = kept + exists, dropped + (not exists)
            return fuse.blown
        finally:
            await store.database.client.drop_database(store.database.db.name)
            await store.database.close()

    sweep(one)
    return kept, dropped


def test_a_booking_killed_at_any_command_is_all_there_or_not_at_all(mongo_uri: str) -> None:
    kept, dropped = _every_crash_point(
        mongo_uri, None, lambda store, clinic: _book(store, clinic, uuid.uuid4().hex)
    )
    assert kept and dropped  # both recovery paths were taken: forward and back


def test_a_hold_and_a_cancel_killed_at_any_command_heal(mongo_uri: str) -> None:
    async def hold(store: ResourceStore, clinic: Clinic) -> None:
        await _book(store, clinic, "held", hold=True)

    async def cancel(store: ResourceStore, clinic: Clinic) -> None:
        current = await store.read("Appointment", "held")
        body = {**(current.resource or {}), "status": "cancelled",
                "cancelationReason": {"text": "No longer needed"}}  # fmt: skip
        await booking.change(store, current, body, _caller())

    _every_crash_point(mongo_uri, None, hold)
    _every_crash_point(mongo_uri, hold, cancel)


def test_a_reschedule_killed_at_any_command_heals(mongo_uri: str) -> None:
    async def first(store: ResourceStore, clinic: Clinic) -> None:
        await _book(store, clinic, "first")

    async def reschedule(store: ResourceStore, clinic: Clinic) -> None:
        clinic.appointments["second"] = clinic.patients[0]
        body = _body(clinic, slot=2)
        await booking.book(store, body, _caller(), rid="second", replacing="first")

    kept, dropped = _every_crash_point(mongo_uri, first, reschedule)
    assert kept and dropped


def _keyed(store: ResourceStore, clinic: Clinic, key: str) -> Awaitable[tuple[Version, bool]]:
    clinic.appointments["keyed"] = clinic.patients[0]
    clinic.keys[key] = "keyed"
    body = _body(clinic)
    return once(
        store,
        key,
        lambda: "the same request",
        lambda uow: booking.book(store, body, _caller(), rid="keyed", uow=uow),
    )


def test_a_keyed_booking_killed_at_any_command_keeps_its_key_in_step(mongo_uri: str) -> None:
    kept, dropped = _every_crash_point(
        mongo_uri, None, lambda store, clinic: _keyed(store, clinic, "k1")
    )
    assert kept and dropped


def test_a_retry_after_a_crash_past_the_commit_point_gets_the_first_result(
    mongo_uri: str,
) -> None:
    """The process died after the booking's rows were stored, before the key's result: the
    retry answers the booking (within the grace it is told to retry, never 'already booked')."""

    async def scenario() -> None:
        history_written = await _number_of(
            mongo_uri, "insert_many history", lambda s, c: _keyed(s, c, "counted")
        )
        store, clinic = await _fresh(mongo_uri)
        fuse = Fuse(history_written, after=True)
        with pytest.raises(Crash):
            await _keyed(crashing(store, fuse), clinic, "k2")
        assert await store.current("Appointment", "keyed") is not None

        with pytest.raises(Conflict, match="still running"):
            await _keyed(store, clinic, "k2")
        await store.database.db[intents.COLLECTION].update_many({}, {"$set": {"at": "0"}})
        version, replayed = await _keyed(store, clinic, "k2")
        assert replayed and (version.id, version.version) == ("keyed", 1)
        assert await violations(store, clinic) == []
        await store.database.close()

    asyncio.run(scenario())


async def _number_of(mongo_uri: str, label: str, operation: Operation) -> int:
    """The number of the operation's command `label` ("insert_many history", ...)."""
    store, clinic = await _fresh(mongo_uri)
    fuse = Fuse()
    await operation(crashing(store, fuse), clinic)
    await store.database.close()
    return fuse.sent.index(label) + 1


def _lost(store: ResourceStore, clinic: Clinic) -> Awaitable[Version]:
    return _book(store, clinic, "lost")


def test_recovery_logs_the_ids_it_repaired_and_no_content(
    mongo_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        claimed = await _number_of(mongo_uri, "replace_one Slot", _lost)
        store, clinic = await _fresh(mongo_uri)
        with pytest.raises(Crash):  # killed right after the Slot's compare-and-set
            await _lost(crashing(store, Fuse(claimed, after=True)), clinic)
        slot = clinic.slots[0]["id"]
        assert ((await store.read("Slot", slot)).resource or {})["status"] == "busy"
        with caplog.at_level(logging.WARNING, logger="fhir_server.store.recovery"):
            settled = await recovery.settle(store.database, older_than=0)
        assert f"Slot/{slot}" in settled.back
        assert ((await store.read("Slot", slot)).resource or {})["status"] == "free"
        logged = caplog.text
        assert f"Slot/{slot}" in logged and "rolled back" in logged
        assert "someone@example.org" not in logged and "free" not in logged
        await store.database.close()

    asyncio.run(scenario())


def test_the_app_settles_cut_short_units_when_it_starts(
    mongo_uri: str, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(redis_url=_NO_BROKER)

    async def crash() -> Clinic:
        database = await connect(mongo_uri, settings.database)
        store = ResourceStore(database, indexer=ResourceIndexer(BASE))
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
        clinic = await seed(store, start)
        with pytest.raises(Crash):
            await _lost(crashing(store, Fuse(claimed, after=True)), clinic)
        await database.db[intents.COLLECTION].update_many({}, {"$set": {"at": "0"}})
        await database.close()
        return clinic

    claimed = asyncio.run(_number_of(mongo_uri, "replace_one Slot", _lost))
    clinic = asyncio.run(crash())
    with TestClient(create_app(settings)) as client:
        slot = client.get(f"/fhir/Slot/{clinic.slots[0]['id']}").json()
        assert slot["status"] == "free"
        assert client.get("/fhir/Appointment/lost").status_code == 404


def test_a_moved_hold_stays_a_hold_and_its_cancel_frees_the_new_slot(mongo_uri: str) -> None:
    """Found by the property test without any crash: a hold moved to another Slot made that
    Slot `busy`, so cancelling the hold (which frees only tentatively held Slots) left it busy
    with no Appointment."""

    async def scenario() -> None:
        store, clinic = await _fresh(mongo_uri)
        held = await _book(store, clinic, "held", hold=True)
        new_slot = {"reference": f"Slot/{clinic.slots[1]['id']}"}
        moved = await booking.change(store, held, {**(held.resource or {}), "slot": [new_slot]},
                                     _caller())  # fmt: skip
        slot = await store.read("Slot", clinic.slots[1]["id"])
        assert (slot.resource or {})["status"] == "busy-tentative"
        cancel = {**(moved.resource or {}), "status": "cancelled",
                  "cancelationReason": {"text": "Changed my mind"}}  # fmt: skip
        await booking.change(store, moved, cancel, _caller())
        assert await violations(store, clinic) == []
        await store.database.close()

    asyncio.run(scenario())
