"""Queries the scheduling engine needs beyond read-by-id: Slots by Schedule and time,
Appointments by slot or status.

Every hot query is an indexed scalar `$eq` plus a range, correct on MongoDB and
fast on the embedded server (where `$in` and `$elemMatch` scan every row):
Slots by the search index's `idx.s.schedule` and `idx.s.start.lo`, Appointments
by its single-valued keys (`idx.u.slot.Slot`, `idx.s.status`).
Status and similar filters are applied in Python on the few rows found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir_server.fhir.appointment_status import ACTIVE
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.search_values import digits
from fhir_server.store.resources import ResourceStore, Version, body_of


def _version(resource_type: str, doc: dict[str, Any]) -> Version:
    return Version(resource_type, doc["_id"], doc["version"], doc["updated"], False, body_of(doc))


async def _versions(
    store: ResourceStore, resource_type: str, query: dict[str, Any]
) -> list[Version]:
    cursor = store.collection(resource_type).find(query)
    return [_version(resource_type, doc) async for doc in cursor if not doc["deleted"]]


async def slots_between(
    store: ResourceStore, schedule_id: str, start: str, end: str
) -> list[Version]:
    """A Schedule's Slots starting in [start, end) (UTC instant strings), any status.

    An indexed `$eq` on the Schedule plus a range on start (our index).
    """
    query = {
        "idx.s.schedule": {"$eq": f"Schedule/{schedule_id}"},
        "idx.s.start.lo": {"$gte": digits(_instant(start)), "$lt": digits(_instant(end))},
    }
    return await _versions(store, "Slot", query)


async def free_slots(
    store: ResourceStore,
    schedule_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    after: str | None = None,
) -> list[Version]:
    """The next `limit` free Slots of a Schedule starting in [start, end), by start.

    `after` (a start key from `start_key`) continues a previous page. Served by
    the search index on (schedule, status, start), so `$find` reads only the
    Slots it may return, however many are stored.
    """
    lower: dict[str, str] = {"$gt": after} if after else {"$gte": digits(start)}
    query = {
        "idx.s.schedule": {"$eq": f"Schedule/{schedule_id}"},
        "idx.s.status": {"$eq": "free"},
        "idx.s.start.lo": {**lower, "$lt": digits(end)},
    }
    cursor = store.collection("Slot").find(query).sort("idx.s.start.lo", 1).limit(limit)
    return [_version("Slot", doc) async for doc in cursor if not doc["deleted"]]


def start_key(slot: Version) -> str:
    """The sortable start key of a Slot (as the search index stores it)."""
    return digits(_instant((slot.resource or {}).get("start")))


def _active(versions: list[Version]) -> list[Version]:
    return [v for v in versions if (v.resource or {}).get("status") in ACTIVE]


def _instant(value: Any) -> datetime:
    return parse_instant(str(value)) if value else datetime.max.replace(tzinfo=UTC)


async def appointments_on_slot(store: ResourceStore, slot_ref: str) -> list[Version]:
    """Active Appointments that reference the Slot (through the search index's slot key)."""
    query = {"idx.u.slot.Slot": {"$eq": slot_ref}}
    return _active(await _versions(store, "Appointment", query))


async def appointments_with_extension(
    store: ResourceStore, url: str, statuses: tuple[str, ...]
) -> list[Version]:
    """Appointments in one of `statuses` carrying a (top-level) extension with this URL.

    Found through the indexed status (`appointments_in`), then the extension is
    checked on the body: the hold job runs every minute and must not read every
    Appointment.
    """
    return [
        a
        for a in await appointments_in(store, statuses)
        if any(e.get("url") == url for e in (a.resource or {}).get("extension", []))
    ]


async def appointments_in(store: ResourceStore, statuses: tuple[str, ...]) -> list[Version]:
    """Appointments in one of `statuses`, through the indexed status: one `$eq` query per
    status (`$in` makes the embedded store scan every row)."""
    found: list[Version] = []
    for status in statuses:
        found += await _versions(store, "Appointment", {"idx.s.status": {"$eq": status}})
    return found


async def all_current(store: ResourceStore, resource_type: str) -> list[Version]:
    """Every current resource of a type (for the rolling job over Schedules)."""
    cursor = store.collection(resource_type).find({"deleted": {"$eq": False}}).sort("_id", 1)
    return [_version(resource_type, doc) async for doc in cursor]


async def ensure_indexes(store: ResourceStore) -> None:
    """The scalar lookup behind slot queries (the Appointment ones use the search indexes).

    Explicit names: on the embedded server an index name ending in `_<field>`
    changes how that field's equality is evaluated.
    """
    await store.collection("Slot").create_index(
        [("idx.s.schedule", 1), ("idx.s.start.lo", 1)], name="slotsbyschedule"
    )
