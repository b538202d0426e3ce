"""A stateful property test: bookings, holds, cancels, reschedules, hold expiry and replayed
Idempotency-Keys, each possibly killed at any store command, then recovery; after every step
the invariants hold.

The process dies through `crash_support`'s fault-injecting wrapper of our `Database`: at its
Nth command (before the store runs it, or after), and nothing of it runs again. Recovery then
settles what it left (`store.recovery`, as a restart or the minute sweep does, here without
the grace), and the invariants are checked, as they are at the end of every example.
Invariants (`crash_support.violations`): no Slot booked twice; a Slot is busy
exactly when an active Appointment holds it; every resource's current version is its latest
history version, with no gaps; an Idempotency-Key is recorded exactly when its booking exists;
each patient's claimed minutes are those of their active appointments; every Appointment
version that is an event has its messages, and no message is about a version never written.

FHIR_PROPERTY_EXAMPLES sets the number of examples (CI: 200).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from pymongo import AsyncMongoClient

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
from tests.integration.crash_support import (
    Clinic,
    Crash,
    Fuse,
    crashing,
    seed,
    violations,
)

EXAMPLES = int(os.environ.get("FHIR_PROPERTY_EXAMPLES", "200"))
# Messages are stored with the bookings; publishing them fails fast (no broker here).
_NO_BROKER = "redis://127.0.0.1:1/0"

crashes = st.one_of(st.none(), st.tuples(st.integers(1, 14), st.booleans()))
picks = st.integers(0, 50)


class _World:
    """One event loop and client for the whole run; each example its own database."""

    loop: asyncio.AbstractEventLoop
    client: AsyncMongoClient[dict[str, Any]]

    def run(self, work: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(work)


WORLD = _World()


class CrashingBookings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        name = f"t{uuid.uuid4().hex[:12]}"
        database = Database(WORLD.client, WORLD.client[name], transactions=False)
        self.store = ResourceStore(database, indexer=ResourceIndexer(BASE))
        self.clinic = Clinic()
        self.requests: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> its request's body

    @initialize()
    def clinic_of_three_slots(self) -> None:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.clinic = WORLD.run(seed(self.store, start + timedelta(days=3)))

    def teardown(self) -> None:
        try:
            self.check()
        finally:
            WORLD.run(WORLD.client.drop_database(self.store.database.db.name))

    # -- the process that may die ---------------------------------------------------------

    def attempt(
        self,
        crash: tuple[int, bool] | None,
        operation: Callable[[ResourceStore], Awaitable[Any]],
    ) -> Any:
        """Run the operation in a process that dies at the crash point; recover after it."""
        fuse = Fuse(*crash) if crash else Fuse()
        try:
            return WORLD.run(operation(crashing(self.store, fuse)))
        except Crash:
            WORLD.run(recovery.settle(self.store.database, older_than=0))
            self.check()
        except FhirError:
            pass
        return None

    def caller(self) -> booking.Caller:
        return booking.Caller(now=datetime.now(UTC), role="staff")

    def new_appointment(self, patient: int) -> str:
        aid = uuid.uuid4().hex
        self.clinic.appointments[aid] = self.clinic.patients[patient]
        return aid

    def body(self, patient: int, slot: int) -> dict[str, Any]:
        chosen = self.clinic.slots[slot]
        return {
            "resourceType": "Appointment",
            "status": "booked",
            "slot": [{"reference": f"Slot/{chosen['id']}"}],
            "participant": [{"actor": {"reference": f"Patient/{self.clinic.patients[patient]}"}}],
        }

    def existing(self, pick: int) -> str | None:
        ids = list(self.clinic.appointments)
        return ids[pick % len(ids)] if ids else None

    # -- rules ----------------------------------------------------------------------------

    @rule(patient=st.integers(0, 1), slot=st.integers(0, 2), hold=st.booleans(), crash=crashes)
    def book(self, patient: int, slot: int, hold: bool, crash: tuple[int, bool] | None) -> None:
        aid, body = self.new_appointment(patient), self.body(patient, slot)
        self.attempt(crash, lambda s: booking.book(s, body, self.caller(), hold=hold, rid=aid))

    @rule(patient=st.integers(0, 1), slot=st.integers(0, 2), crash=crashes)
    def book_with_key(self, patient: int, slot: int, crash: tuple[int, bool] | None) -> None:
        key = uuid.uuid4().hex
        aid, body = self.new_appointment(patient), self.body(patient, slot)
        self.clinic.keys[key] = aid
        self.requests[key] = body
        self.keyed_book(key, aid, body, crash)

    def keyed_book(
        self, key: str, aid: str, body: dict[str, Any], crash: tuple[int, bool] | None
    ) -> Any:
        def action(store: ResourceStore) -> Awaitable[Any]:
            return once(
                store,
                key,
                lambda: f"book {aid}",
                lambda uow: booking.book(store, body, self.caller(), rid=aid, uow=uow),
            )

        return self.attempt(crash, action)

    @rule(pick=picks, crash=crashes)
    def replay_key(self, pick: int, crash: tuple[int, bool] | None) -> None:
        if not self.clinic.keys:
            return
        key = sorted(self.clinic.keys)[pick % len(self.clinic.keys)]
        aid, body = self.clinic.keys[key], self.requests[key]
        stored = WORLD.run(self.store.current("Appointment", aid))
        answer = self.keyed_book(key, aid, body, crash)
        if stored is not None and answer is not None:
            version, replayed = answer
            assert replayed and (version.id, version.version) == (aid, 1)
        if stored is not None and crash is None:
            assert answer is not None, "a retry of a stored booking was refused"

    @rule(pick=picks, crash=crashes)
    def cancel(self, pick: int, crash: tuple[int, bool] | None) -> None:
        reason = {"text": "Changed my mind"}
        self.change(
            pick, crash, lambda b: {**b, "status": "cancelled", "cancelationReason": reason}
        )

    @rule(pick=picks, crash=crashes)
    def confirm_hold(self, pick: int, crash: tuple[int, bool] | None) -> None:
        self.change(pick, crash, lambda b: {**b, "status": "booked"})

    @rule(pick=picks, slot=st.integers(0, 2), crash=crashes)
    def move(self, pick: int, slot: int, crash: tuple[int, bool] | None) -> None:
        ref = f"Slot/{self.clinic.slots[slot]['id']}"
        self.change(pick, crash, lambda b: {**b, "slot": [{"reference": ref}]})

    def change(
        self,
        pick: int,
        crash: tuple[int, bool] | None,
        new: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        aid = self.existing(pick)
        current = WORLD.run(self.store.current("Appointment", aid)) if aid else None
        if current is None or current.resource is None:
            return
        self.attempt(
            crash,
            lambda s: booking.change(s, current, new(dict(current.resource)), self.caller()),
        )

    @rule(pick=picks, patient=st.integers(0, 1), slot=st.integers(0, 2), crash=crashes)
    def reschedule(
        self, pick: int, patient: int, slot: int, crash: tuple[int, bool] | None
    ) -> None:
        old = self.existing(pick)
        if old is None:
            return
        aid, body = self.new_appointment(patient), self.body(patient, slot)
        self.attempt(crash, lambda s: booking.book(s, body, self.caller(), rid=aid, replacing=old))

    @rule(crash=crashes)
    def expire_holds(self, crash: tuple[int, bool] | None) -> None:
        later = datetime.now(UTC) + timedelta(days=1)
        self.attempt(crash, lambda s: booking.release_expired_holds(s, later))

    def check(self) -> None:
        problems = WORLD.run(violations(self.store, self.clinic))
        assert not problems, problems


@pytest.fixture(scope="module")
def world(settings_factory: Callable[..., Settings], mongo_uri: str) -> Iterator[_World]:
    celery_app.configure(settings_factory(redis_url=_NO_BROKER))
    changes.install()  # the booking's messages, as the app's start does
    config_cache.configure(5.0)
    WORLD.loop = asyncio.new_event_loop()
    WORLD.client = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield WORLD
    WORLD.run(WORLD.client.close())
    WORLD.loop.close()


def test_crashes_at_any_command_leave_a_consistent_store(world: _World) -> None:
    machine = settings(
        max_examples=EXAMPLES,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=EXAMPLES <= 200,
        database=None,
    )(CrashingBookings)
    machine.TestCase().runTest()
