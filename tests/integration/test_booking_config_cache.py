"""The per-process cache of Schedules and live Subscriptions on the booking path
(`store.config_cache`), the one-off patient-claims backfill at startup, and what
a booking costs in store commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import AsyncMongoClient, monitoring

from fhir_server.app import create_app
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.scheduling import booking
from fhir_server.scheduling.claims_backfill import backfill_claims, ensure_claims_backfilled
from fhir_server.settings import Settings
from fhir_server.store import config_cache
from fhir_server.store.clock import now_instant, parse_instant
from fhir_server.store.database import Database
from fhir_server.store.resources import ResourceStore, first_row
from tests.conftest import BASE
from tests.integration.rest_support import services
from tests.integration.scheduling_setup import (
    HEADERS,
    appointment,
    diagnostics,
    hours_from_now,
    instant,
    make_clinic,
    make_patient,
    make_slot,
)

# Messages are stored in the booking; publishing them fails fast and is left to the relay.
_NO_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def app_with(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """Start an app with these settings overrides (stopped after the test)."""
    started: list[TestClient] = []

    def start(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings_factory(redis_url=_NO_BROKER, **overrides)))
        started.append(client.__enter__())
        return client

    yield start
    for client in started:
        client.__exit__(None, None, None)


def _store(client: TestClient) -> ResourceStore:
    return services(client).store


def _call(client: TestClient, function: Callable[..., Any], *args: Any) -> Any:
    assert client.portal is not None
    return client.portal.call(function, *args)


def _book(client: TestClient, clinic: dict[str, str], hours: float) -> dict[str, Any]:
    slot = make_slot(client, clinic["schedule"], hours_from_now(hours))
    response = client.post(
        "/fhir/Appointment", json=appointment(make_patient(client), slot), headers=HEADERS
    )
    assert response.status_code == 201, response.text
    booked: dict[str, Any] = response.json()
    return booked


def _hooked(client: TestClient, booked: dict[str, Any], subscription_id: str) -> bool:
    """Whether the booking stored a rest-hook message for the Subscription."""
    patient = booked["participant"][0]["actor"]["reference"]
    bundle = client.get(f"/fhir/Communication?patient={patient}").json()
    abouts = [str(e["resource"].get("about")) for e in bundle.get("entry", [])]
    return any(f"Subscription/{subscription_id}" in about for about in abouts)


def _subscription(role: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "active",
        "reason": "EHR",
        "criteria": f"Appointment?actor=PractitionerRole/{role}",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"},
    }


def _written_elsewhere(client: TestClient, resource: dict[str, Any]) -> None:
    """Store a current row as another server process would (this one's cache is not told)."""
    updated = now_instant()
    resource = {**resource, "meta": {"versionId": "1", "lastUpdated": updated}}
    row = first_row(resource, ResourceIndexer(services(client).base_url), updated)
    _call(client, _store(client).collection(resource["resourceType"]).insert_one, row)


def test_writes_through_this_process_reach_the_very_next_booking(
    app_with: Callable[..., TestClient],
) -> None:
    client = app_with(subscription_allowed_hosts=["127.0.0.1"])
    clinic = make_clinic(client)
    _book(client, clinic, 30)  # the Schedule and the (empty) Subscription list are now kept
    created = client.post("/fhir/Subscription", json=_subscription(clinic["role"]), headers=HEADERS)
    assert created.status_code == 201, created.text
    assert _hooked(client, _book(client, clinic, 31), created.json()["id"])

    schedule = client.get(f"/fhir/Schedule/{clinic['schedule']}").json()
    updated = client.put(
        f"/fhir/Schedule/{schedule['id']}", json={**schedule, "active": False}, headers=HEADERS
    )
    assert updated.status_code == 200, updated.text
    slot = make_slot(client, clinic["schedule"], hours_from_now(32))
    refused = client.post(
        "/fhir/Appointment", json=appointment(make_patient(client), slot), headers=HEADERS
    )
    assert refused.status_code == 409 and "not active" in diagnostics(refused)


def test_other_processes_writes_are_seen_after_the_cache_time_and_at_once_with_0(
    app_with: Callable[..., TestClient],
) -> None:
    client = app_with(subscription_allowed_hosts=["127.0.0.1"], config_cache_seconds=1.0)
    clinic = make_clinic(client)
    _book(client, clinic, 40)
    _written_elsewhere(client, {**_subscription(clinic["role"]), "id": "sub-elsewhere"})
    assert not _hooked(client, _book(client, clinic, 41), "sub-elsewhere")  # kept list
    time.sleep(1.1)
    assert _hooked(client, _book(client, clinic, 42), "sub-elsewhere")

    fresh = app_with(subscription_allowed_hosts=["127.0.0.1"], config_cache_seconds=0)
    clinic = make_clinic(fresh)
    _book(fresh, clinic, 43)
    _written_elsewhere(fresh, {**_subscription(clinic["role"]), "id": "sub-at-once"})
    assert _hooked(fresh, _book(fresh, clinic, 44), "sub-at-once")


def test_backfill_claims_the_time_of_appointments_stored_before_claims(
    app_with: Callable[..., TestClient],
) -> None:
    client = app_with()
    clinic = make_clinic(client)
    pid = make_patient(client)
    early, late = (make_slot(client, clinic["schedule"], hours_from_now(h)) for h in (50, 52))
    for slot in (early, late):  # booked before claims existed: no claim rows
        _call(client, _store(client).create, _unclaimed(pid, parse_instant(slot["start"])))

    # The app's start recorded the backfill as done, so it is skipped; no search either.
    _call(client, ensure_claims_backfilled, _store(client))
    on_late = client.post("/fhir/Appointment", json=appointment(pid, late), headers=HEADERS)
    assert on_late.status_code == 201, on_late.text

    # The early one gets its claim; the late one loses to the booking just made.
    assert _call(client, backfill_claims, _store(client), datetime.now(UTC)) == 1
    on_early = client.post("/fhir/Appointment", json=appointment(pid, early), headers=HEADERS)
    assert on_early.status_code == 409 and "overlaps" in diagnostics(on_early)
    assert _call(client, backfill_claims, _store(client), datetime.now(UTC)) == 0


def _unclaimed(pid: str, start: datetime) -> dict[str, Any]:
    """A booked Appointment as stored before claims existed (no Slot: none is needed here)."""
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": instant(start),
        "end": instant(start + timedelta(minutes=30)),
        "participant": [{"actor": {"reference": f"Patient/{pid}"}, "status": "accepted"}],
    }


def test_backfill_skips_appointments_that_ended_before_yesterday(
    app_with: Callable[..., TestClient],
) -> None:
    client = app_with()
    pid = make_patient(client)
    now = datetime.now(UTC)
    _call(client, _store(client).create, _unclaimed(pid, now - timedelta(days=3)))
    assert _call(client, backfill_claims, _store(client), now) == 0
    _call(client, _store(client).create, _unclaimed(pid, now + timedelta(days=3)))
    assert _call(client, backfill_claims, _store(client), now) == 1


class _Commands(monitoring.CommandListener):
    """The (command, collection) of every command a client sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def _recipients(store: ResourceStore) -> str:
    """Patients p0 and p1 with e-mail, a Practitioner with e-mail in a PractitionerRole (the
    Schedule's actor, so a participant of the booking) and an active Subscription."""
    email = [{"system": "email", "value": "someone@example.org"}]
    for n in range(2):
        await store.update({"resourceType": "Patient", "id": f"p{n}", "telecom": email})
    doctor = await store.create({"resourceType": "Practitioner", "telecom": email})
    role = await store.create(
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": f"Practitioner/{doctor.id}"},
        }
    )
    await store.create(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "EHR sync",
            "criteria": "Appointment?status=booked",
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:1/hook"},
        }
    )
    return f"PractitionerRole/{role.id}"


def _booking_commands(mongo_uri: str, *, recipients: bool) -> list[tuple[str, str]]:
    """The (command, collection) list of the second of two bookings (the first fills the
    Schedule and Subscription cache)."""
    commands = _Commands()
    config_cache.configure(5.0)

    async def scenario() -> list[tuple[str, str]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_uri, event_listeners=[commands], tz_aware=True
        )
        database = Database(client, client[f"t{uuid.uuid4().hex[:12]}"], transactions=False)
        store = ResourceStore(database, indexer=ResourceIndexer(BASE))
        try:
            location = await store.create({"resourceType": "Location", "name": "Clinic"})
            actor = await _recipients(store) if recipients else f"Location/{location.id}"
            schedule = await store.create(
                {"resourceType": "Schedule", "active": True, "actor": [{"reference": actor}]}
            )
            start = hours_from_now(30)
            for n in range(2):
                slot = {
                    "resourceType": "Slot",
                    "schedule": {"reference": f"Schedule/{schedule.id}"},
                    "status": "free",
                    "start": instant(start + timedelta(hours=n)),
                    "end": instant(start + timedelta(hours=n, minutes=30)),
                }
                stored = await store.create(slot)
                body = appointment(f"p{n}", {**slot, "id": stored.id})
                commands.sent.clear()
                await booking.book(store, body, booking.Caller(now=datetime.now(UTC)))
            return sorted(commands.sent)
        finally:
            await client.close()

    return asyncio.run(scenario())


def test_a_booking_without_recipients_costs_seven_store_commands(mongo_uri: str) -> None:
    """Slot read and compare-and-set, the patient's claim, the Patient (recipient), the
    Appointment and the history rows, and the unit of work's intent (written over this
    process's previous, finished one: marking a unit done costs no command); the Schedule and
    Subscriptions come from the cache, nothing searches the patient's Appointments and
    reminders are planned later by the beat."""
    assert _booking_commands(mongo_uri, recipients=False) == [
        ("find", "Patient"),
        ("find", "Slot"),
        ("insert", "Appointment"),
        ("insert", "history"),
        ("insert", "patient_claims"),
        ("update", "Slot"),
        ("update", "store_intents"),
    ]


def test_a_booking_with_recipients_adds_their_reads_and_one_insert_of_messages(
    mongo_uri: str,
) -> None:
    """The PractitionerRole (to add its Practitioner as participant) and the Practitioner
    (a recipient) are read; the messages (to both and to the Subscription) are one insert,
    and their history rows ride with the booking's (and its intent)."""
    assert _booking_commands(mongo_uri, recipients=True) == [
        ("find", "Patient"),
        ("find", "Practitioner"),
        ("find", "PractitionerRole"),
        ("find", "Slot"),
        ("insert", "Appointment"),
        ("insert", "Communication"),
        ("insert", "history"),
        ("insert", "patient_claims"),
        ("update", "Slot"),
        ("update", "store_intents"),
    ]
