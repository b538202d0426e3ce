"""The report rollups' collections (not FHIR resources), for `reporting.rollups`.

- `report_cells`: one row per rollup table (source, grain, period, subject kind,
  stratifier kind): its cells as JSON text under `rows`, and `seq`, the last
  batch applied to it. A batch changes a table only if its `seq` is still the
  one read (a compare-and-set), so replaying a batch is a no-op for the
  tables it already changed, whoever replays it.
- `report_items`: one row per Appointment or Slot: what it contributes now (as JSON
  text under `item`: the embedded store pays per field); and one per Patient: the cells of
  their counted appointments, from which their distinct-patient counters follow.
- `report_batches`: one row per batch of versions folded in, written before
  any table or item changes (its `_id`, the batch number, is the claim: a
  second runner finds it taken) and marked done at the end; a batch left
  unfinished by a crash is replayed from it. The `_id` is the number as a
  zero-padded string: the embedded store sorts and compares integer `_id`s
  wrongly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from pymongo import InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from fhir_server.store.inserts import DUPLICATE_KEY
from fhir_server.store.resources import ResourceStore, Version, body_of, version_from_history

CELLS = "report_cells"
ITEMS = "report_items"
BATCHES = "report_batches"
_CHUNK = 1000


def _batch_id(number: int) -> str:
    return f"{number:012d}"


def _item_row(item: dict[str, Any]) -> dict[str, Any]:
    return {"_id": item["_id"], "item": orjson.dumps(item).decode()}


class ReportStore:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        db = store.database.db
        self.cells, self.items, self.batches = db[CELLS], db[ITEMS], db[BATCHES]

    async def tables(self, ids: list[str]) -> dict[str, tuple[int, dict[str, Any]]]:
        """The tables named (absent ones left out): id -> (seq, rows)."""
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        for start in range(0, len(ids), _CHUNK):
            async for doc in self.cells.find({"_id": {"$in": ids[start : start + _CHUNK]}}):
                found[doc["_id"]] = (doc["seq"], orjson.loads(doc["rows"]))
        return found

    async def put_tables(self, writes: list[tuple[str, int | None, int, dict[str, Any]]]) -> None:
        """Write tables `(id, seen, seq, rows)`, each only if it still holds batch `seen` (None:
        if it does not exist yet), in a few commands; a table another runner changed
        meanwhile is left as it is."""
        ops: list[Any] = []
        for tid, seen, seq, rows in writes:
            doc = {"_id": tid, "seq": seq, "rows": orjson.dumps(rows).decode()}
            ops.append(
                InsertOne(doc) if seen is None else ReplaceOne({"_id": tid, "seq": seen}, doc)
            )
        for start in range(0, len(ops), _CHUNK):
            try:
                await self.cells.bulk_write(ops[start : start + _CHUNK], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                    raise

    async def insert_tables(self, tables: dict[str, dict[str, Any]]) -> None:
        docs = [
            {"_id": tid, "seq": 0, "rows": orjson.dumps(rows).decode()}
            for tid, rows in tables.items()
        ]
        for start in range(0, len(docs), _CHUNK):
            await self.cells.insert_many(docs[start : start + _CHUNK], ordered=False)

    async def items_of(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _CHUNK):
            async for doc in self.items.find({"_id": {"$in": wanted[start : start + _CHUNK]}}):
                found[doc["_id"]] = orjson.loads(doc["item"])
        return found

    async def put_items(self, items: list[dict[str, Any]]) -> None:
        """Replace the items (writing the same item twice is harmless)."""
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            await self.items.bulk_write(
                [ReplaceOne({"_id": i["_id"]}, _item_row(i), upsert=True) for i in chunk],
                ordered=False,
            )

    async def insert_items(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), _CHUNK):
            rows = [_item_row(i) for i in items[start : start + _CHUNK]]
            await self.items.insert_many(rows, ordered=False)

    async def claim(self, batch: dict[str, Any]) -> bool:
        """Record a new batch (its `_id` names its number `n`); False when that number is
        taken, or when a later batch exists: `finish` drops the records before the last, so a
        runner that numbered its batch from a stale last one could otherwise take a freed
        number and count versions a later batch already counted."""
        batch_id = _batch_id(batch["n"])
        try:
            await self.batches.insert_one({**batch, "_id": batch_id, "done": False})
        except DuplicateKeyError:
            return False
        # The latest record is never dropped, so a later one is seen here if it exists.
        if await self.batches.find_one({"_id": {"$gt": batch_id}}) is not None:
            await self.batches.delete_one({"_id": batch_id})
            return False
        return True

    async def last_batch(self) -> dict[str, Any] | None:
        found = await self.batches.find().sort("_id", -1).limit(1).to_list(1)
        return found[0] if found else None

    async def finish(self, number: int) -> None:
        """Mark a batch done and drop the ones before it (only the last is ever replayed)."""
        await self.batches.update_one({"_id": _batch_id(number)}, {"$set": {"done": True}})
        await self.batches.delete_many({"_id": {"$lt": _batch_id(number)}})

    async def clear(self) -> None:
        for collection in (self.cells, self.items, self.batches):
            await collection.delete_many({})

    async def resources(self, resource_type: str, ids: Iterable[str]) -> dict[str, Any]:
        """The current, live resources of a type among `ids`, by id."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Any] = {}
        collection = self.store.collection(resource_type)
        for start in range(0, len(wanted), _CHUNK):
            query = {"_id": {"$in": wanted[start : start + _CHUNK]}, "deleted": False}
            async for doc in collection.find(query):
                found[doc["_id"]] = body_of(doc)
        return found

    async def history(self, resource_type: str) -> AsyncIterator[Version]:
        """Every version of a type, oldest first, through one cursor (a rebuild): paging by
        instant would read a burst of versions written at one instant again and again."""
        cursor = self.store.history.find({"type": {"$eq": resource_type}}).sort(
            [("at", 1), ("_id", 1)]
        )
        async for doc in cursor.batch_size(_CHUNK * 5):
            yield version_from_history(doc)

    async def all_resources(self, resource_type: str) -> dict[str, Any]:
        """Every current, live resource of a type, by id (Schedules; Patients for a rebuild)."""
        return {
            doc["_id"]: body_of(doc)
            async for doc in self.store.collection(resource_type).find({"deleted": False})
        }
