"""Reminder rows on the real store: one row per appointment start, moved on offset by offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.notifications.delivery import Context
from fhir_server.notifications.events import reminder_rows
from fhir_server.notifications.reminders import enqueue_due
from fhir_server.settings import Settings
from fhir_server.store.clock import to_instant
from fhir_server.store.outbox_store import REMINDERS, OutboxStore
from fhir_server.store.resources import ResourceStore
from fhir_server.store.unit_of_work import UnitOfWork
from tests.integration.store_support import run

SETTINGS = Settings(notify_reminder_offsets=[120, 1440])
START = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)


def _booked(rid: str) -> dict[str, Any]:
    """A booked Appointment whose patient has no contact: reminders record no message."""
    return {
        "resourceType": "Appointment",
        "id": rid,
        "status": "booked",
        "start": "2031-03-04T09:00:00Z",
        "end": "2031-03-04T09:30:00Z",
        "participant": [{"actor": {"reference": "Patient/nobody"}, "status": "accepted"}],
    }


async def _row(store: ResourceStore, key: str) -> dict[str, Any]:
    found: dict[str, Any] = await store.database.db[REMINDERS].find_one({"_id": key})
    return found


def test_one_row_per_start_moves_on_to_the_next_offset_then_closes(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        ctx = Context(SETTINGS, store, OutboxStore(store))
        await store.update(_booked("a1"))
        rows = reminder_rows(_booked("a1"), SETTINGS, START - timedelta(days=2))
        assert [(r.offsets, r.due) for r in rows] == [((1440, 120), "2031-03-03T09:00:00.000000Z")]
        assert reminder_rows(_booked("a1"), SETTINGS, START - timedelta(minutes=30)) == []
        await ctx.outbox.add_reminders(rows, UnitOfWork())
        key = rows[0].key

        assert await enqueue_due(ctx, START - timedelta(days=1, minutes=1)) == []
        assert (await _row(store, key))["offsets"] == [1440, 120]  # not due yet
        await enqueue_due(ctx, START - timedelta(minutes=1439))
        row = await _row(store, key)
        assert (row["state"], row["offsets"], row["due"]) == (
            "pending",
            [120],
            to_instant(START - timedelta(minutes=120)),
        )
        await enqueue_due(ctx, START - timedelta(minutes=119))
        assert (await _row(store, key))["state"] == "sent"

    run(mongo_uri, scenario)


def test_rows_of_the_one_offset_layout_are_still_read_and_closed(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        ctx = Context(SETTINGS, store, OutboxStore(store))
        await store.update(_booked("a2"))
        start = to_instant(START)
        for offset in (1440, 120):  # as written before rows held several offsets
            await store.database.db[REMINDERS].insert_one(
                {
                    "_id": f"a2|{start}|{offset}",
                    "appointment": "a2",
                    "start": start,
                    "offset": offset,
                    "due": to_instant(START - timedelta(minutes=offset)),
                    "state": "pending",
                }
            )
        await enqueue_due(ctx, START - timedelta(minutes=119))  # both due: the nearest only
        assert (await _row(store, f"a2|{start}|120"))["state"] == "sent"
        assert (await _row(store, f"a2|{start}|1440"))["state"] == "superseded"

    run(mongo_uri, scenario)
