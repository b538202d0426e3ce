"""Bulk export jobs and their NDJSON parts, kept in the store (not on a worker's disk).

Two collections:

- `bulk_export_jobs`: one document per `$export` job: what was asked, by whom,
  where the work stands (`position`), the lease of the worker doing it, and,
  once complete, the outputs of the manifest. Every step a worker takes is a
  conditional update on its lease, so a job has one writer at a time and a
  restarted worker takes over from the last checkpoint.
- `bulk_export_parts`: the files, as parts of at most `export_part_size` NDJSON
  lines, keyed `job/Type/seq`; a file is its parts in `seq` order. Parts live
  in the store so that any API replica can serve what any worker wrote.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from fhir_server.store.database import Database, collection_name

JOBS = "bulk_export_jobs"
PARTS = "bulk_export_parts"
# States in which a worker still has work to do.
RUNNING = ("accepted", "in-progress")
# Rows per keyset page of an export's resources, and parts per page of a download: what
# one query makes the store hold at most (a part holds up to `export_part_size` resources).
ROWS_PER_PAGE = 1000
PARTS_PER_PAGE = 4


class ExportStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.jobs = database.db[JOBS]
        self.parts = database.db[PARTS]

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index([("status", 1), ("lease_until", 1)])
        await self.parts.create_index([("job", 1), ("type", 1), ("seq", 1)])

    # -- jobs ------------------------------------------------------------------

    async def create(self, job: dict[str, Any]) -> None:
        await self.jobs.insert_one(job)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.jobs.find_one({"_id": job_id})
        return found

    async def claim(
        self, job_id: str, owner: str, now: float, lease_until: float
    ) -> dict[str, Any] | None:
        """Take the job for `owner` when it is unfinished and nobody's lease on it runs."""
        found: dict[str, Any] | None = await self.jobs.find_one_and_update(
            {"_id": job_id, "status": {"$in": list(RUNNING)}, "lease_until": {"$lt": now}},
            {"$set": {"status": "in-progress", "lease_owner": owner, "lease_until": lease_until}},
            return_document=ReturnDocument.AFTER,
        )
        return found

    async def step(self, job_id: str, owner: str, changes: dict[str, Any]) -> bool:
        """Record progress (and renew or give up the lease); False when the job is no
        longer this owner's to write (cancelled, or taken over after a lapsed lease)."""
        result = await self.jobs.update_one(
            {"_id": job_id, "lease_owner": owner, "status": "in-progress"}, {"$set": changes}
        )
        return bool(result.matched_count)

    async def fail(self, job_id: str, message: str, expires: float) -> None:
        await self.jobs.update_one(
            {"_id": job_id, "status": {"$in": list(RUNNING)}},
            {"$set": {"status": "error", "message": message, "expires": expires}},
        )

    async def count_failure(self, job_id: str, owner: str) -> int:
        """One more failed attempt of the owner's run; the job's count after it."""
        found = await self.jobs.find_one_and_update(
            {"_id": job_id, "lease_owner": owner},
            {"$inc": {"failures": 1}, "$set": {"lease_until": 0.0}},
            return_document=ReturnDocument.AFTER,
        )
        return int(found["failures"]) if found else 0

    async def cancel(self, job_id: str, now: float) -> bool:
        """Mark the job cancelled (its worker stops at its next step) and drop its files;
        False when there is no such job, or it was already cancelled."""
        result = await self.jobs.update_one(
            {"_id": job_id, "status": {"$ne": "cancelled"}},
            {"$set": {"status": "cancelled", "expires": now}},
        )
        await self.drop_parts(job_id)
        return bool(result.matched_count)

    async def stalled(self, now: float) -> list[str]:
        """Unfinished jobs whose worker's lease ran out (it died, or never started)."""
        cursor = self.jobs.find(
            {"status": {"$in": list(RUNNING)}, "lease_until": {"$lt": now}}, {"_id": 1}
        )
        return [doc["_id"] async for doc in cursor]

    async def purge_expired(self, now: float) -> int:
        """Delete finished jobs past their expiry, with their files; how many."""
        cursor = self.jobs.find(
            {"status": {"$nin": list(RUNNING)}, "expires": {"$lt": now}}, {"_id": 1}
        )
        ids = [doc["_id"] async for doc in cursor]
        for job_id in ids:
            await self.drop_parts(job_id)
            await self.jobs.delete_one({"_id": job_id})
        return len(ids)

    # -- parts -----------------------------------------------------------------

    async def put_part(self, job_id: str, rtype: str, seq: int, text: str, count: int) -> None:
        """Write (or rewrite, after a crash between a part and its checkpoint) one part."""
        key = f"{job_id}/{rtype}/{seq:08d}"
        row = {"_id": key, "job": job_id, "type": rtype, "seq": seq, "count": count, "text": text}
        await self.parts.replace_one({"_id": key}, row, upsert=True)

    async def drop_parts(self, job_id: str, rtype: str | None = None, from_seq: int = 0) -> None:
        query: dict[str, Any] = {"job": job_id, "seq": {"$gte": from_seq}}
        if rtype is not None:
            query["type"] = rtype
        await self.parts.delete_many(query)

    async def part_texts(self, job_id: str, rtype: str) -> AsyncIterator[str]:
        """A file's text, part after part (keys sort in `seq` order; a few parts a query)."""
        query = {"job": job_id, "type": rtype}
        pages = keyset_pages(self.parts, query, f"{job_id}/{rtype}/", PARTS_PER_PAGE)
        try:
            async for row in pages:
                yield str(row["text"])
        finally:
            await pages.aclose()

    # -- the resources exported ------------------------------------------------

    def rows_after(
        self, rtype: str, filters: list[dict[str, Any]], after_id: str | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Current rows of a type matching any of `filters`, in `_id` order after
        `after_id`, read in keyset pages (`keyset_pages`): no query asks the store for the
        whole set (close the generator when leaving it early)."""
        query: dict[str, Any] = filters[0] if len(filters) == 1 else {"$or": filters}
        collection = self.database.db[collection_name(rtype)]
        return keyset_pages(collection, query, after_id, ROWS_PER_PAGE)


async def keyset_pages(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    after: str | None,
    page: int,
) -> AsyncGenerator[dict[str, Any], None]:
    """Documents matching `query` in `_id` order after `after`, `page` per query.

    Each query starts at the last `_id` seen and stops after `page` rows, so the
    store never holds more than a page for us, whatever the collection's size:
    the embedded store builds a query's whole result before it answers (and
    keeps it while the cursor lives), 1.35 GB for 200,000 Patients when the
    export was one query. The bound is the cursor's `min` on the `_id` index
    (inclusive, so the row equal to it is dropped here): the embedded store
    turns it into an indexed SQL range whatever the filter, where a `$gt` on
    `_id` would make it read every row; MongoDB answers either from the index.
    """
    last = after
    while True:
        limit = page + (1 if last is not None else 0)
        cursor = collection.find(query).sort("_id", 1).hint([("_id", 1)]).limit(limit)
        if last is not None:
            cursor = cursor.min([("_id", last)])
        rows = await cursor.to_list()
        if rows and last is not None and rows[0]["_id"] < last:
            raise RuntimeError("The store ignored the keyset bound of a page.")
        for row in rows:
            if last is None or row["_id"] > last:
                yield row
        if len(rows) < limit:
            return
        last = rows[-1]["_id"]
