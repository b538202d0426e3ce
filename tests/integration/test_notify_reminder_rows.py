"""Reminder rows on the real store: planned from the Appointment history, one row per
appointment start, moved on offset by offset."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.notifications.delivery import Context
from fhir_server.notifications.reminders import PLANNED, enqueue_due, plan, reminder_rows
from fhir_server.settings import Settings
from fhir_server.store import markers
from fhir_server.store.clock import parse_instant, to_instant
from fhir_server.store.outbox_store import REMINDERS, OutboxStore
from fhir_server.store.resources import ResourceStore, Version, history_row
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
        assert await ctx.outbox.add_reminders(rows) == 1
        assert await ctx.outbox.add_reminders(rows) == 0  # a known key is kept as it is
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


def _at(start: datetime, rid: str, status: str = "booked") -> dict[str, Any]:
    end = start + timedelta(minutes=30)
    return {**_booked(rid), "status": status, "start": to_instant(start), "end": to_instant(end)}


async def _keys(store: ResourceStore) -> set[str]:
    return {doc["_id"] async for doc in store.database.db[REMINDERS].find({})}


async def _store_version(store: ResourceStore, body: dict[str, Any], at: datetime) -> None:
    """A history row dated `at`, as a version written then would have left."""
    updated = to_instant(at)
    body = {**body, "meta": {"versionId": "1", "lastUpdated": updated}}
    await store.history.insert_one(
        history_row(Version("Appointment", body["id"], 1, updated, False, body, "POST"))
    )


def test_the_beat_plans_rows_from_the_appointment_history_once(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        ctx = Context(SETTINGS, store, OutboxStore(store))
        now = datetime.now(UTC)
        moved_to = START + timedelta(days=1)
        await store.update(_booked("b1"))
        await store.update(_at(START, "b2", status="proposed"))  # not booked: no reminders
        await store.update(_at(START, "b3", status="pending"))  # a hold: none either
        await store.update(_booked("b4"))
        await store.update(_at(moved_to, "b4"))  # moved: a row for each start
        await store.update(_at(now + timedelta(minutes=60), "b5"))  # only the 120 is past
        await store.update(_at(now + timedelta(minutes=600), "b6"))  # 24 h ahead is past
        # Booked three days ago for yesterday (history from before the planner ran): started.
        await _store_version(store, _at(now - timedelta(days=1), "b7"), now - timedelta(days=3))

        assert await plan(ctx, now) == 4
        start = to_instant(START)
        assert await _keys(store) == {
            f"b1|{start}",
            f"b4|{start}",
            f"b4|{to_instant(moved_to)}",
            f"b6|{to_instant(now + timedelta(minutes=600))}",
        }
        b6 = await _row(store, f"b6|{to_instant(now + timedelta(minutes=600))}")
        assert b6["offsets"] == [120]  # the 24 h reminder was already past when it was booked
        marker = await markers.read(store, PLANNED)
        assert marker is not None
        latest = (await store.read("Appointment", "b6")).updated
        assert marker["updated"] == latest

        assert await plan(ctx, now) == 0  # the next run reads on from the marker

        # A version whose history row is stored after the run, dated just before its
        # marker (a request still writing), is read by the next run.
        await _store_version(store, _booked("b8"), parse_instant(latest) - timedelta(seconds=30))
        assert await plan(ctx, now) == 1
        assert f"b8|{start}" in await _keys(store)

    run(mongo_uri, scenario)


def test_an_appointment_that_has_started_is_not_reminded(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        ctx = Context(SETTINGS, store, OutboxStore(store))
        await store.update(_booked("c1"))
        await plan(ctx, datetime.now(UTC))
        key = f"c1|{to_instant(START)}"
        assert (await _row(store, key))["state"] == "pending"
        # The beat was down until after the start: both offsets are past, none is sent.
        assert await enqueue_due(ctx, START + timedelta(minutes=1)) == []
        assert (await _row(store, key))["state"] == "skipped"

    run(mongo_uri, scenario)


def test_a_version_with_an_unreadable_start_is_logged_and_the_others_planned(
    mongo_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(store: ResourceStore) -> None:
        ctx = Context(SETTINGS, store, OutboxStore(store))
        now = datetime.now(UTC)
        await _store_version(store, {**_booked("d1"), "start": "someday"}, now)
        await store.update(_booked("d2"))
        assert await plan(ctx, now) == 1
        assert await _keys(store) == {f"d2|{to_instant(START)}"}

    with caplog.at_level(logging.WARNING, logger="fhir_server.notifications.reminders"):
        run(mongo_uri, scenario)
    assert "Appointment/d1 version 1: no reminders planned" in caplog.text
