"""A booking whose commit loses its store connection while the process lives on.

The store restarts under a running API (bench_crash's `store` kill): the command in
flight raises `AutoReconnect` (before or after the store ran it), the request
answers 503, and the unit's intent is left for recovery. Later requests run before
the sweep settles it: another booking of the same Slot, or the client's retry with
the same Idempotency-Key. After the sweep the store's invariants hold
(`crash_support.violations`), for a connection lost at every command of the booking;
when the store answers again at once the request settles its own unit, so they hold
before the sweep as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.notifications import celery_app, changes
from fhir_server.scheduling import booking
from fhir_server.scheduling.idempotent import once
from fhir_server.settings import Settings
from fhir_server.store import config_cache, recovery
from fhir_server.store.database import Database
from fhir_server.store.resources import ResourceStore
from tests.conftest import BASE
from tests.integration.crash_support import Clinic, Fuse, crashing, seed, violations

_NO_BROKER = "redis://127.0.0.1:1/0"
# More than the commands of one booking's commit and the reads before it.
_COMMANDS = 24


@pytest.fixture(scope="module")
def configured(settings_factory: Callable[..., Settings]) -> Iterator[None]:
    celery_app.configure(settings_factory(redis_url=_NO_BROKER))
    changes.install()
    config_cache.configure(5.0)
    yield


def _body(clinic: Clinic, patient: int) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{clinic.slots[0]['id']}"}],
        "participant": [{"actor": {"reference": f"Patient/{clinic.patients[patient]}"}}],
    }


async def _scenario(mongo_uri: str, fuse: Fuse, keyed: bool) -> list[str]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    name = f"r{uuid.uuid4().hex[:12]}"
    store = ResourceStore(Database(client, client[name], transactions=False), ResourceIndexer(BASE))
    try:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        clinic = await seed(store, start + timedelta(days=3))
        caller = booking.Caller(now=datetime.now(UTC), role="staff")
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        clinic.appointments = {first: clinic.patients[0], second: clinic.patients[1]}
        key = uuid.uuid4().hex
        if keyed:
            clinic.keys[key] = first

        async def book_first(s: ResourceStore) -> Any:
            if not keyed:
                return await booking.book(s, _body(clinic, 0), caller, rid=first)
            return await once(
                s,
                key,
                lambda: f"book {first}",
                lambda uow: booking.book(s, _body(clinic, 0), caller, rid=first, uow=uow),
            )

        with contextlib.suppress(AutoReconnect, FhirError):  # a 503; the process lives on
            await book_first(crashing(store, fuse))
        if keyed:  # the client's retry, before the sweep
            with contextlib.suppress(FhirError):
                await book_first(store)
        with contextlib.suppress(FhirError):  # another patient's booking of the same Slot
            await booking.book(store, _body(clinic, 1), caller, rid=second)
        # A store back at once lets the request settle its own unit: consistent before any sweep.
        early = (
            [] if fuse.down else [f"before the sweep: {p}" for p in await violations(store, clinic)]
        )
        await recovery.settle(store.database, older_than=0)
        return early + await violations(store, clinic)
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
@pytest.mark.parametrize("down", [False, True], ids=["back-at-once", "down-for-the-request"])
def test_a_lost_connection_at_any_command_then_another_booking_then_the_sweep(
    configured: None, mongo_uri: str, keyed: bool, down: bool
) -> None:
    found = {}
    for at in range(1, _COMMANDS + 1):
        for after in (False, True):
            fuse = Fuse(at, after, lives=True, down=down)
            problems = asyncio.run(_scenario(mongo_uri, fuse, keyed))
            if problems:
                found[(at, after, tuple(fuse.sent[at - 1 : at]))] = problems
    assert not found, found
