"""A follow of the report rollups that finds nothing new, or a few new versions, costs a few
index lookups whatever the size of the history (`$evaluate-measure` runs one before every
report): each `find` it sends on the history is bounded below by where the last run stopped
and limited to a page, and the embedded store answers it from the `(type, at)` history index
the app creates on start, as an index range, not a scan of the collection (about 13 ms per
1,000 history rows when that index is missing). Watching every command the driver sends,
then asking SQLite, under the embedded store, for the plan of each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import neosqlite
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent

from fhir_server.reporting import rollups
from fhir_server.store import embedded, markers
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.clock import to_instant
from fhir_server.store.database import Database
from fhir_server.store.resources import HISTORY, ResourceStore, order_key

ZONE = ZoneInfo("UTC")
NOW = datetime.now(UTC).replace(microsecond=0)
INDEX_RANGE = "SEARCH history USING INDEX idx_history_type_at (<expr>=? AND <expr>>?)"


class Commands(CommandListener):
    """Every command the driver sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.sent.append(dict(event.command))

    def succeeded(self, event: Any) -> None:
        return

    def failed(self, event: Any) -> None:
        return

    def history_finds(self) -> list[dict[str, Any]]:
        found = [c for c in self.sent if c.get("find") == HISTORY]
        self.sent.clear()
        return found


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def appointment(n: int, start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": f"a{n}",
        "status": "fulfilled",
        "start": stamp(start),
        "end": stamp(start + timedelta(minutes=15)),
        "participant": [
            {"actor": {"reference": f"Patient/p{n % 3}"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr1"}, "status": "accepted"},
        ],
    }


async def history(store: ResourceStore) -> None:
    """Patients, a Schedule, and past Appointments, Slots and delivered reminders, each
    written at an instant of the last 300 hours."""
    written: list[tuple[dict[str, Any], str]] = [
        ({"resourceType": "Patient", "id": f"p{n}", "gender": "female"}, to_instant(NOW))
        for n in range(3)
    ]
    written.append(({"resourceType": "Schedule", "id": "s1"}, to_instant(NOW)))
    for n in range(300):
        start = NOW - timedelta(hours=300 - n)
        at = to_instant(start - timedelta(days=2))
        written.append((appointment(n, start), at))
        slot = {
            "resourceType": "Slot",
            "id": f"slot{n}",
            "schedule": {"reference": "Schedule/s1"},
            "status": "busy",
            "start": stamp(start),
            "end": stamp(start + timedelta(minutes=15)),
        }
        written.append((slot, at))
        reminder = {
            "resourceType": "Communication",
            "id": f"c{n}",
            "status": "completed",
            "category": [{"coding": [{"code": "reminder-1440"}]}],
            "about": [{"reference": f"Appointment/a{n}"}],
        }
        written.append((reminder, at))
    await insert_first_versions(store, written)


def plan(db_file: Path, find: dict[str, Any]) -> list[str]:
    """The SQLite plan of what the embedded store runs for a `find`: it hands the filter,
    sort and limit to neosqlite, replayed here on the same database file."""
    connection = neosqlite.Connection(str(db_file))
    try:
        statements: list[str] = []
        connection.db.set_trace_callback(statements.append)
        cursor = connection[find["find"]].find(find["filter"])
        list(cursor.sort(list(find["sort"].items())).limit(find["limit"]))
        connection.db.set_trace_callback(None)
        table = f"FROM {find['find']} "
        selects = [s for s in statements if s.lstrip().startswith("SELECT") and table in s]
        assert len(selects) == 1, statements
        return [str(row[3]) for row in connection.db.execute(f"EXPLAIN QUERY PLAN {selects[0]}")]
    finally:
        connection.close()


def test_a_follow_reads_the_history_through_index_ranges_from_its_marker(
    tmp_path: Path,
) -> None:
    server = embedded.start(tmp_path)
    name = f"follow{uuid.uuid4().hex[:8]}"
    commands = Commands()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int, str]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            server.uri, event_listeners=[commands], tz_aware=True
        )
        try:
            store = ResourceStore(Database(client, client[name], transactions=False))
            await store.ensure_indexes()  # as the app does on start
            await history(store)
            await rollups.rebuild(store, ZONE)
            marker = await markers.read(store, rollups.MARKER) or {}
            commands.sent.clear()
            idle = await rollups.follow(store, ZONE)
            nothing_new = commands.history_finds()
            for n in range(300, 303):
                await store.create(appointment(n, NOW + timedelta(days=1)), rid=f"a{n}")
            busy = await rollups.follow(store, ZONE)
            return nothing_new, commands.history_finds(), idle, busy, marker["Appointment"]
        finally:
            await client.close()

    try:
        nothing_new, few_new, idle, busy, position = asyncio.run(scenario())
        db_file = tmp_path / "db" / f"{name}.db"
        assert (idle, busy) == (0, 3)
        assert {f["filter"]["type"]["$eq"] for f in nothing_new} == set(rollups.STREAMS)
        for find in nothing_new + few_new:
            # Bounded below by the marker (past everything the rebuild read), one page at most,
            # and answered as a range of the (type, at) index.
            assert find["filter"]["at"]["$gte"] > order_key(position)
            assert 0 < find["limit"] <= 1000  # a page (500; doubled for a burst at one instant)
            assert plan(db_file, find)[0] == INDEX_RANGE
        assert len(nothing_new) == len(rollups.STREAMS)
        assert len(few_new) >= len(rollups.STREAMS)
    finally:
        embedded.stop(server, tmp_path)
