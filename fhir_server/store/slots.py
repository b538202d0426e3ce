"""Queries the scheduling engine needs beyond read-by-id: Slots by Schedule and time,
Appointments by patient, slot or flag.

They read the current rows' `resource` directly (not the search index), with
operators that are correct on MongoDB and on the embedded server: `$elemMatch`
for arrays, scalar `$eq`/`$in`/ranges on fixed-width UTC instant strings.
"""

from __future__ import annotations

from typing import Any

from fhir_server.store.resources import ResourceStore, Version

# Appointment statuses that hold their Slot(s) and the patient's time.
ACTIVE = ("proposed", "pending", "booked", "arrived", "checked-in")


def _version(resource_type: str, doc: dict[str, Any]) -> Version:
    return Version(
        resource_type, doc["_id"], doc["version"], doc["updated"], False, doc["resource"]
    )


async def _versions(
    store: ResourceStore, resource_type: str, query: dict[str, Any], limit: int = 0
) -> list[Version]:
    query = {"deleted": {"$eq": False}, **query}
    cursor = store.collection(resource_type).find(query).sort("resource.start", 1)
    if limit:
        cursor = cursor.limit(limit)
    return [_version(resource_type, doc) async for doc in cursor]


async def slots_between(
    store: ResourceStore,
    schedule_ids: list[str],
    start: str,
    end: str,
    statuses: tuple[str, ...] | None = None,
    limit: int = 0,
) -> list[Version]:
    """Slots of these Schedules starting in [start, end) (UTC instant strings)."""
    query: dict[str, Any] = {
        "resource.schedule.reference": {"$in": [f"Schedule/{sid}" for sid in schedule_ids]},
        "resource.start": {"$gte": start, "$lt": end},
    }
    if statuses:
        query["resource.status"] = {"$in": list(statuses)}
    return await _versions(store, "Slot", query, limit)


async def patient_appointments_overlapping(
    store: ResourceStore, patient_ref: str, start: str, end: str, earliest_start: str
) -> list[Version]:
    """The patient's active Appointments that overlap [start, end).

    `earliest_start` bounds the scan on the indexed start (the longest
    appointment considered is `start - earliest_start` long), so the check does
    not slow down as Appointments accumulate.
    """
    query = {
        "resource.start": {"$gte": earliest_start, "$lt": end},
        "resource.end": {"$gt": start},
        "resource.status": {"$in": list(ACTIVE)},
        "resource.participant": {"$elemMatch": {"actor.reference": {"$eq": patient_ref}}},
    }
    return await _versions(store, "Appointment", query)


async def appointments_on_slot(store: ResourceStore, slot_ref: str) -> list[Version]:
    """Active Appointments that reference the Slot."""
    query = {
        "resource.slot": {"$elemMatch": {"reference": {"$eq": slot_ref}}},
        "resource.status": {"$in": list(ACTIVE)},
    }
    return await _versions(store, "Appointment", query)


async def appointments_with_extension(store: ResourceStore, url: str) -> list[Version]:
    """Appointments carrying a (top-level) extension with this URL."""
    query = {"resource.extension": {"$elemMatch": {"url": {"$eq": url}}}}
    return await _versions(store, "Appointment", query)


async def all_current(store: ResourceStore, resource_type: str) -> list[Version]:
    """Every current resource of a type (for the rolling job over Schedules)."""
    cursor = store.collection(resource_type).find({"deleted": {"$eq": False}}).sort("_id", 1)
    return [_version(resource_type, doc) async for doc in cursor]


async def ensure_indexes(store: ResourceStore) -> None:
    """Scalar lookups behind the slot and overlap queries.

    Explicit names: on the embedded server an index name ending in `_<field>`
    changes how that field's equality is evaluated.
    """
    await store.collection("Slot").create_index(
        [("resource.schedule.reference", 1), ("resource.start", 1)], name="schedslotlookup"
    )
    await store.collection("Appointment").create_index(
        [("resource.start", 1)], name="schedapptstart"
    )
