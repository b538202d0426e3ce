"""Messages of writes under way, unreadable versions, and the relay's window.

The delivery step runs in this process (`delivery.deliver`, what a worker's
task runs) on the real store, so the test can act while a write is half done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.notifications import delivery
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.notifications.message import details_of, with_details
from fhir_server.notifications.relay import stranded
from fhir_server.settings import Settings
from tests.integration.notify_support import Running, start_all, stop_all
from tests.integration.test_notify_reliability import book_and_record


@pytest.fixture(scope="module")
def env(settings_factory: Callable[..., Settings]) -> Iterator[Running]:
    running = start_all(settings_factory)
    running.worker.stop()  # deliveries run here, when the test says
    yield running
    stop_all(running)


def _address(tag: str) -> str:
    return f"{tag}-{os.urandom(3).hex()}@example.org"


def test_messages_of_a_write_under_way_are_not_taken_along(env: Running) -> None:
    """A worker's batch never claims a message whose write may still fail: the failed
    write takes its message back, and no message is left about a version never written."""
    [committed] = book_and_record(env, _address("done"))
    store = env.rig.store

    async def half_done_write() -> tuple[list[str], dict[str, delivery.Outcome]]:
        person = await store.create(
            {"resourceType": "Patient", "telecom": [{"system": "email", "value": _address("x")}]}
        )
        async with store.unit_of_work() as uow:
            appt = await store.create(
                {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "start": "2031-01-02T09:00:00Z",
                    "participant": [{"actor": {"reference": f"Patient/{person.id}"}}],
                },
                uow=uow,
            )
            assert appt.resource is not None
            ids = await record_event(
                store, uow, AppointmentEvent("booked", appt.resource), settings=env.rig.settings
            )
            # Meanwhile a worker runs the task of a complete write's message.
            outcomes = await delivery.deliver(env.rig.ctx, committed)
            raise _Failed(ids, outcomes)  # then the write fails (a Slot conflict, say)

    with pytest.raises(_Failed) as failed:
        env.rig.run(half_done_write())
    in_flight, outcomes = failed.value.args
    assert outcomes[committed].status == "completed"
    assert in_flight and not set(in_flight) & set(outcomes)
    for cid in in_flight:  # taken back with the failed write
        assert env.rig.run(store.current("Communication", cid)) is None


class _Failed(Exception):
    pass


def _event_about_missing_version(env: Running) -> list[str]:
    """A stored message about an appointment version that is not (yet) readable."""
    appt = env.rig.create(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": "2031-01-03T09:00:00Z",
            "participant": [
                {
                    "actor": {
                        "reference": "Patient/"
                        + env.rig.create(
                            {
                                "resourceType": "Patient",
                                "telecom": [{"system": "email", "value": _address("later")}],
                            }
                        )["id"]
                    }
                }
            ],
        }
    )
    ahead: dict[str, Any] = {**appt, "meta": {**appt["meta"], "versionId": "7"}}
    return env.rig.record(AppointmentEvent("booked", ahead))


def test_an_unreadable_appointment_is_retried_before_the_message_fails(env: Running) -> None:
    [cid] = _event_about_missing_version(env)
    now = datetime.now(UTC)
    outcome = env.rig.run(delivery.deliver(env.rig.ctx, cid, now))[cid]
    assert outcome.status == "retry"  # not `not-done` at the first sight
    for _ in range(env.rig.settings.notify_max_attempts - 1):
        now += timedelta(hours=1)  # past any backoff
        outcome = env.rig.run(delivery.deliver(env.rig.ctx, cid, now))[cid]
    assert outcome.status == "not-done"
    [settled] = env.rig.communications([cid])
    assert settled["statusReason"]["text"] == "The appointment of this message cannot be read."
    assert details_of(settled)["attempts"] == env.rig.settings.notify_max_attempts


def test_the_relay_pages_past_messages_waiting_for_a_later_retry(env: Running) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    waiting = []
    for _ in range(6):
        [cid] = book_and_record(env, _address("wait"))
        body = env.rig.read("Communication", cid)
        env.rig.update(with_details(body, nextAttempt=later))
        waiting.append(cid)
    [lost] = book_and_record(env, _address("lost"))  # its publish was lost: nothing sends it
    found = env.rig.run(stranded(env.rig.ctx, datetime.now(UTC) + timedelta(minutes=5), page=5))
    assert lost in found
    assert not set(waiting) & set(found)
