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
    fingerprint: str | None


_ATTEMPTS = 3


async def reserve(
    store: ResourceStore, key: str, fingerprint: str, stale_before: str
) -> Recorded | None:
    """Claim the key for this request; the earlier record when it was claimed already.

    A claim still unfinished since before `stale_before` belonged to a process
    that died mid-request: it is replaced, so the key does not stay stuck.
    """
    collection = store.database.db[COLLECTION]
    for _ in range(_ATTEMPTS):
        try:
            await collection.insert_one(
                {"_id": key, "created": now_instant(), "done": False, "fingerprint": fingerprint}
            )
            return None
        except DuplicateKeyError:
            doc: dict[str, Any] | None = await collection.find_one({"_id": key})
        if doc is None:
            continue
        if not doc["done"] and doc["created"] < stale_before:
            await collection.delete_one({"_id": key, "done": False, "created": doc["created"]})
            continue
        return Recorded(
            doc.get("type"),
            doc.get("id"),
            doc.get("version"),
            doc.get("status"),
            doc.get("fingerprint"),
        )
    return Recorded(None, None, None, None, None)


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
