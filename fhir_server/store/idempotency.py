"""Idempotency keys of booking requests, stored so that every server process sees them.

A key is reserved before the booking runs (a unique insert, so two concurrent
retries cannot both proceed, holding a token of the reserving request). Its
result (the reference to what was written) is recorded in the booking's own
unit of work (`UnitOfWork.record_key`), so the record and the booking are
stored together or not at all, crash or not. A booking that fails releases
the reservation so that a retry can run again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from fhir_server.store.clock import now_instant
from fhir_server.store.intents import KEYS, KeyResult
from fhir_server.store.resources import ResourceStore

COLLECTION = KEYS


@dataclass(frozen=True)
class Recorded:
    """What a key already stands for: None fields while the first request is still running."""

    resource_type: str | None
    id: str | None
    version: int | None
    status: int | None
    fingerprint: str | None


@dataclass(frozen=True)
class Reserved:
    """This request holds the key: `token` names its reservation."""

    token: str


_ATTEMPTS = 3


async def reserve(
    store: ResourceStore, key: str, fingerprint: str, stale_before: str
) -> Reserved | Recorded:
    """Claim the key for this request, or the earlier record when it was claimed already.

    A claim still unfinished since before `stale_before` belonged to a process
    that died before its booking was stored: it is replaced, so the key does
    not stay stuck.
    """
    collection = store.database.db[COLLECTION]
    for _ in range(_ATTEMPTS):
        token = uuid.uuid4().hex
        try:
            await collection.insert_one(
                {
                    "_id": key,
                    "created": now_instant(),
                    "done": False,
                    "fingerprint": fingerprint,
                    "token": token,
                }
            )
            return Reserved(token)
        except DuplicateKeyError:
            doc = await collection.find_one({"_id": key})
        if doc is None:
            continue
        if not doc["done"] and doc["created"] < stale_before:
            await collection.delete_one({"_id": key, "done": False, "created": doc["created"]})
            continue
        return _as_recorded(doc)
    return Recorded(None, None, None, None, None)


async def read(store: ResourceStore, key: str) -> Recorded | None:
    """The key's record as it is now (None when it was released)."""
    doc = await store.database.db[COLLECTION].find_one({"_id": key})
    return _as_recorded(doc) if doc is not None else None


def _as_recorded(doc: dict[str, Any]) -> Recorded:
    return Recorded(
        doc.get("type"),
        doc.get("id"),
        doc.get("version"),
        doc.get("status"),
        doc.get("fingerprint"),
    )


def result(
    fingerprint: str, resource_type: str, rid: str, version: int, status: int
) -> dict[str, Any]:
    """The fields a finished key's record holds."""
    return {
        "fingerprint": fingerprint,
        "type": resource_type,
        "id": rid,
        "version": version,
        "status": status,
    }


async def release(store: ResourceStore, key: str, token: str) -> None:
    """Free the key after its booking failed (only this request's reservation)."""
    await KeyResult(key, token, {}).release(store.database.db)
