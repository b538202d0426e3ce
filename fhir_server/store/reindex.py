"""Recomputing the `idx` of stored rows, and knowing when it is due.

Every current row keeps what its search parameters extracted when it was
written (`idx`, see `fhir.indexing`). A release that adds or changes a
parameter (as `match-telecom` on Patient did) leaves the rows written before
without it, so searches on it miss them until they are indexed again.

`reindex_type` walks a type's live rows in `_id` order, one batch per round
trip, and rewrites only the `idx` that differs, on the condition that the row
still holds the version it read: a write that lands in between wins (its own
write indexed it with the running code) and is counted as skipped, so a
running server never gets a stale index back.

The marker `search-index` (`store.markers`) holds, per type, the fingerprint
of the definitions the rows were indexed with; `warn_if_stale` compares it
with the running code's at start-up, in one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from pymongo import UpdateOne

from fhir_server.fhir.indexing import fingerprint
from fhir_server.fhir.resource_types import ADMIN_TYPES, SERVED_TYPES
from fhir_server.store import markers
from fhir_server.store.resources import Indexer, ResourceStore, body_of

log = logging.getLogger(__name__)

MARKER = "search-index"
# Every type whose rows carry an `idx`: the API's and the admins' AuditEvents.
INDEXED_TYPES: Final[tuple[str, ...]] = (*SERVED_TYPES, *ADMIN_TYPES)
STALE_WARNING = (
    "Search parameters changed since the data was indexed (%s): searches may miss resources "
    "stored before; run `fhir-server reindex`."
)

# Called with the ids of a batch's rows about to be rewritten, after they were read.
BeforeWrite = Callable[[list[str]], Awaitable[None]]


@dataclass(frozen=True)
class TypeProgress:
    """How far the reindex of one type is: rows read of `total`, rewritten, and skipped
    because a write changed them meanwhile."""

    resource_type: str
    total: int
    done: int = 0
    changed: int = 0
    skipped: int = 0


async def reindex_type(
    store: ResourceStore,
    resource_type: str,
    *,
    batch: int = 1000,
    report: Callable[[TypeProgress], None] | None = None,
    before_write: BeforeWrite | None = None,
) -> TypeProgress:
    """Index every live row of `resource_type` again with `store.indexer`; the counts.

    `report` hears the counts after each batch. `before_write` runs between a
    batch's read and its write: a test's way to write a row meanwhile.
    """
    collection = store.collection(resource_type)
    live: dict[str, Any] = {"deleted": {"$eq": False}}
    progress = TypeProgress(resource_type, await collection.count_documents(live))
    async with contextlib.aclosing(_batches(collection, live, batch)) as batches:
        async for rows in batches:
            # Indexing is pure CPU (FHIRPath): in a thread, so the next batch is read meanwhile.
            stale = await asyncio.to_thread(_stale, store.indexer, rows)
            if before_write is not None and stale:
                await before_write(list(stale))
            matched = 0
            if stale:
                result = await collection.bulk_write(list(stale.values()), ordered=False)
                matched = result.matched_count
            progress = replace(
                progress,
                done=progress.done + len(rows),
                changed=progress.changed + matched,
                skipped=progress.skipped + len(stale) - matched,
            )
            if report is not None:
                report(progress)
    return progress


async def _batches(
    collection: Any, live: dict[str, Any], batch: int
) -> AsyncGenerator[list[dict[str, Any]]]:
    """The live rows in `_id` order, `batch` at a time; each next batch is asked for before
    this one is handed over, so the store reads it while the caller indexes."""

    async def after(last: str | None) -> list[dict[str, Any]]:
        query = live if last is None else {**live, "_id": {"$gt": last}}
        return [row async for row in collection.find(query).sort("_id", 1).limit(batch)]

    pending = asyncio.ensure_future(after(None))
    try:
        while rows := await pending:
            pending = asyncio.ensure_future(after(rows[-1]["_id"]))
            yield rows
    finally:
        pending.cancel()  # the caller stopped early (an error): no read left running


def _stale(indexer: Indexer, rows: list[dict[str, Any]]) -> dict[str, UpdateOne]:
    """Per row whose `idx` differs from what `indexer` makes of its body: the write that sets
    it, only while the row is still at the version read."""
    stale = {}
    for row in rows:
        idx = indexer(body_of(row) or {})
        if idx != row.get("idx"):
            stale[row["_id"]] = UpdateOne(
                {"_id": row["_id"], "version": row["version"]}, {"$set": {"idx": idx}}
            )
    return stale


async def record(store: ResourceStore, types: Iterable[str]) -> None:
    """Note that the rows of `types` are indexed with the running code's definitions."""
    found = await markers.read(store, MARKER) or {}
    recorded = {**found.get("types", {}), **{t: fingerprint(t) for t in types}}
    await markers.write(store, MARKER, {"types": recorded})


async def stale_types(store: ResourceStore) -> list[str]:
    """The types whose rows were indexed with other definitions than the running code's.

    One read when the marker is there. Without it, a database holding no
    resource yet gets the running fingerprints recorded (there is nothing to
    reindex); one written before fingerprints were kept names its non-empty types.
    """
    found = await markers.read(store, MARKER)
    if found is not None:
        recorded = found.get("types", {})
        return [t for t in INDEXED_TYPES if recorded.get(t) != fingerprint(t)]
    holding = [t for t in INDEXED_TYPES if await store.collection(t).find_one({}) is not None]
    if not holding:
        await record(store, INDEXED_TYPES)
    return holding


async def warn_if_stale(store: ResourceStore) -> None:
    """Log one warning at start-up when rows need `fhir-server reindex`."""
    stale = await stale_types(store)
    if stale:
        log.warning(STALE_WARNING, ", ".join(stale))
