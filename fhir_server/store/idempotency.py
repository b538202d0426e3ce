"""Idempotency keys of booking requests, stored so that every server process sees them.

A key is reserved before the booking runs (a unique insert, so two concurrent
retries cannot both proceed), completed with the reference to what was
written, or released when the booking failed so that a retry can run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from fhir_server.store.clock import now_instant
from fhir_server.store.resources import ResourceStore

COLLECTION = "idempotency_keys"


@dataclass(frozen=True)
class Recorded:
    """What a key already stands for: None fields while the first request is still running."""

    resource_type: str | None
    id: str | None
    version: int | None
    status: int | None


async def reserve(store: ResourceStore, key: str) -> Recorded | None:
    """Claim the key for this request; the earlier record when it was claimed already."""
    collection = store.database.db[COLLECTION]
    try:
        await collection.insert_one({"_id": key, "created": now_instant(), "done": False})
    except DuplicateKeyError:
        doc: dict[str, Any] | None = await collection.find_one({"_id": key})
        if doc is None:
            return await reserve(store, key)
        return Recorded(doc.get("type"), doc.get("id"), doc.get("version"), doc.get("status"))
    return None


async def complete(
    store: ResourceStore, key: str, resource_type: str, rid: str, version: int, status: int
) -> None:
    await store.database.db[COLLECTION].update_one(
        {"_id": key},
        {
            "$set": {
                "done": True,
                "type": resource_type,
                "id": rid,
                "version": version,
                "status": status,
            }
        },
    )


async def release(store: ResourceStore, key: str) -> None:
    await store.database.db[COLLECTION].delete_one({"_id": key, "done": False})
