"""Never lost, never twice: broker down at booking time, and a worker killed mid-batch."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.notifications import celery_app, delivery
from fhir_server.notifications.celery_app import RELAY_TASK
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.notifications.message import message_id
from fhir_server.notifications.relay import relay
from tests.integration.notify_support import Running, wait_until


def booking(env: Running, address: str) -> dict[str, Any]:
    person = env.rig.create(
        {"resourceType": "Patient", "telecom": [{"system": "email", "value": address}]}
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    return env.rig.create(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "participant": [
                {"actor": {"reference": f"Patient/{person['id']}"}, "status": "accepted"}
            ],
        }
    )


def book_and_record(env: Running, address: str) -> list[str]:
    """A booking-like write and its messages in one unit of work."""

    async def body() -> list[str]:
        person = await env.rig.store.create(
            {"resourceType": "Patient", "telecom": [{"system": "email", "value": address}]}
        )
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        async with env.rig.store.unit_of_work() as uow:
            appt = await env.rig.store.create(
                {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "participant": [{"actor": {"reference": f"Patient/{person.id}"}}],
                },
                uow=uow,
            )
            assert appt.resource is not None
            return await record_event(
                env.rig.store,
                uow,
                AppointmentEvent("booked", appt.resource),
                settings=env.rig.settings,
            )

    return env.rig.run(body())


def test_broker_down_at_booking_time_booking_succeeds_and_relay_sends_later(env: Running) -> None:
    address = f"down-{os.urandom(3).hex()}@example.org"
    dead = env.rig.settings.data_dir / "no-redis-here.sock"
    celery_app.configure(env.rig.settings, url=f"redis+socket://{dead}")
    began = time.monotonic()
    try:
        ids = book_and_record(env, address)  # does not raise ...
    finally:
        celery_app.configure(env.rig.settings)
    assert time.monotonic() - began < 1.5  # ... and does not hang on reconnects
    [comm] = env.rig.communications(ids)
    assert comm["status"] == "preparation"
    assert env.rig.read("Appointment", comm["about"][0]["reference"].split("/")[1])
    assert env.smtp.to(address) == []
    # Too fresh to relay yet (the publish may still be on its way) ...
    assert env.rig.run(relay(env.rig.ctx, datetime.now(UTC))) == []
    # ... relayed once the broker is back and the message is older than relay_after.
    # Beat's relay job, run by the worker, publishes it once older than relay_after.
    relay_job = celery_app.current()

    def relayed() -> bool:
        relay_job.send_task(RELAY_TASK)
        return env.rig.communications(ids)[0]["status"] != "preparation"

    wait_until(relayed, timeout=15, every=0.5)
    [comm] = env.rig.wait_settled(ids)
    assert comm["status"] == "completed"
    assert len(env.smtp.to(address)) == 1


def test_failed_booking_leaves_no_message(env: Running) -> None:
    address = f"rollback-{os.urandom(3).hex()}@example.org"
    appt = booking(env, address)

    async def body() -> None:
        async with env.rig.store.unit_of_work() as uow:
            await record_event(
                env.rig.store, uow, AppointmentEvent("booked", appt), settings=env.rig.settings
            )
            raise RuntimeError("the slot claim failed")

    with pytest.raises(RuntimeError):
        env.rig.run(body())
    key = f"{appt['id']}|booked|1|email|{appt['participant'][0]['actor']['reference']}"
    assert env.rig.run(env.rig.store.current("Communication", message_id(key))) is None
    assert env.smtp.to(address) == []


def test_worker_killed_mid_batch_every_message_delivered_exactly_once(env: Running) -> None:
    tag = os.urandom(3).hex()
    addresses = [f"batch{i}-{tag}@example.org" for i in range(8)]
    env.smtp.hold_rcpt = addresses[3]  # the worker will be inside this send when killed
    env.smtp.holding.clear()
    env.worker.stop()  # all eight wait in the queue, so the worker takes them as one batch
    ids = []
    for address in addresses:
        ids += book_and_record(env, address)
    time.sleep(delivery.SETTLED_AFTER)  # only messages of complete writes are taken along
    env.worker.start()
    wait_until(env.smtp.holding.is_set, timeout=30)
    env.worker.kill()
    env.smtp.hold_rcpt = None
    claimed = env.rig.communications(ids)
    assert [c["status"] for c in claimed] == ["in-progress"] * 8  # one claim for the batch
    # Sent before the kill: the first three; the fourth never got past RCPT.
    assert [len(env.smtp.to(a)) for a in addresses] == [1, 1, 1, 0, 0, 0, 0, 0]
    env.worker.start()
    # The dead worker's claims wait for the lease (3 s here), then the relay publishes them.
    relayed = wait_until(lambda: env.rig.run(relay(env.rig.ctx)), timeout=15, every=0.5)
    assert sorted(relayed) == sorted(ids)
    settled = env.rig.wait_settled(ids)
    assert all(c["status"] == "completed" for c in settled)
    # Exactly once: the three already sent were settled from their sent marks, not resent.
    assert [len(env.smtp.to(a)) for a in addresses] == [1] * len(addresses)
