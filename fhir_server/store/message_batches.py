"""Batched reads and versioned writes of the worker's messages (Communications).

Sending one message used to cost about eight store round trips (read, claim,
settle, bookkeeping), and each round trip costs the embedded server more than
the document it carries. A worker now claims, reads and settles a whole batch
with one command each: a `$in` read, an unordered insert of the history rows,
one multi-statement replace of the current rows.

The versioned write keeps `ResourceStore`'s rules: the history row's unique
`_id` (Type/id/version) is the compare-and-set, then the current row is
replaced only if it still holds the previous version; a message that loses
either race is left to whoever won it. The row layout is `resources.py`'s
(its row builders are used, not copied).

Sent marks: after the receiver accepts a message, one tiny row `_id = id`
records it before the next message goes out, so a worker killed mid-batch
(claims written, settle not yet) leaves a trace of what it had already sent;
whoever takes the claims over settles those without sending them again. The
marks are dropped once the batch is settled.
"""

from __future__ import annotations

from typing import Any

import orjson
from pymongo import ASCENDING, ReplaceOne
from pymongo.errors import DuplicateKeyError

from fhir_server.store.clock import now_instant
from fhir_server.store.inserts import insert_new
from fhir_server.store.resources import (
    ResourceStore,
    Version,
    current_row,
    history_row,
    stamped,
    version_from_current,
    version_from_history,
)

SENT = "notification_sent"
MESSAGES = "Communication"


class MessageBatches:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        self.messages = store.collection(MESSAGES)
        self.sent = store.database.db[SENT]

    def with_versions(self, versions: dict[str, Version]) -> ResourceStore:
        """This store, with `vread` answered from `versions` (see `history_versions`)."""
        return _PrefetchedStore(self.store, versions)

    async def fresh(self, limit: int, before: str) -> list[Version]:
        """Messages never attempted (`preparation`, version 1) written before `before`,
        oldest first.

        Version 1 tells them apart without reading their bodies: a message
        waiting for its retry has been claimed and settled since (version 3
        or more), so a backlog of retries never crowds new messages out.
        `before` keeps out the messages of writes that may still be under way
        (see `delivery.SETTLED_AFTER`).
        """
        cursor = (
            self.messages.find(
                {
                    "idx.s.status": {"$eq": "preparation"},
                    "version": 1,
                    "deleted": {"$eq": False},
                    "updated": {"$lt": before},
                }
            )
            .sort("updated", ASCENDING)
            .limit(limit)
        )
        return [version_from_current(MESSAGES, doc) async for doc in cursor]

    async def history_versions(self, keys: list[str]) -> dict[str, Version]:
        """Versions by their history key `Type/id/version` (one query; unknown keys absent)."""
        if not keys:
            return {}
        cursor = self.store.history.find({"_id": {"$in": keys}})
        return {doc["_id"]: version_from_history(doc) async for doc in cursor}

    async def update_many(
        self, changes: list[tuple[Version, dict[str, Any]]]
    ) -> list[Version | None]:
        """Write each body as the next version of its message; None where another writer won."""
        updated = now_instant()
        rows = [
            Version(MESSAGES, old.id, old.version + 1, updated, False,
                    stamped(body, old.id, old.version + 1, updated))
            for old, body in changes
        ]  # fmt: skip
        written = await self._insert_history(rows)
        replaced = await self._replace_current([(changes[i][0], rows[i]) for i in written])
        lost = [rows[i] for i in written if rows[i].id not in replaced]
        if lost:  # compensate: a history row whose current row another writer took
            # (only rows still ours: the winner's unit of work may have written that key)
            mine = [{"_id": history_row(row)["_id"], "updated": row.updated} for row in lost]
            await self.store.history.delete_many({"$or": mine})
        return [row if i in written and row.id in replaced else None for i, row in enumerate(rows)]

    async def _insert_history(self, rows: list[Version]) -> list[int]:
        """Indexes of the rows inserted; a duplicate key is a version someone else wrote."""
        if not rows:
            return []
        documents = [history_row(r) for r in rows]
        failed = await self._insert_new(documents)
        if failed:  # a dead worker's orphaned claim is taken back; a live writer's is not
            reclaimed = await self.store.reclaim_orphans([documents[i]["_id"] for i in failed])
            retry = [i for i in sorted(failed) if documents[i]["_id"] in reclaimed]
            still_taken = await self._insert_new([documents[i] for i in retry])
            failed = (failed - set(retry)) | {retry[n] for n in still_taken}
        return [i for i in range(len(rows)) if i not in failed]

    async def _insert_new(self, documents: list[dict[str, Any]]) -> set[int]:
        """Insert history rows; the indexes of those whose key was already taken."""
        return await insert_new(self.store.history, documents)

    async def _replace_current(self, pairs: list[tuple[Version, Version]]) -> set[str]:
        """Ids whose current row moved from the old version to the new one."""
        if not pairs:
            return set()
        indexer = self.store.indexer
        operations = [
            ReplaceOne(
                {"_id": old.id, "version": old.version},
                current_row(
                    new.id,
                    orjson.dumps(new.resource).decode(),
                    new.version,
                    new.updated,
                    indexer(new.resource or {}),
                ),
            )
            for old, new in pairs
        ]
        result = await self.messages.bulk_write(operations, ordered=False)
        if result.matched_count == len(pairs):
            return {new.id for _, new in pairs}
        # Rare (a concurrent writer): find out which replaces matched.
        wanted = {new.id: new.version for _, new in pairs}
        cursor = self.messages.find({"_id": {"$in": list(wanted)}}, {"version": 1})
        return {doc["_id"] async for doc in cursor if doc["version"] == wanted[doc["_id"]]}

    # -- sent marks ----------------------------------------------------------

    async def mark_sent(self, message_id: str) -> None:
        try:
            await self.sent.insert_one({"_id": message_id})
        except DuplicateKeyError:
            return  # marked by an earlier attempt that died before settling

    async def sent_among(self, message_ids: list[str]) -> set[str]:
        if not message_ids:
            return set()
        cursor = self.sent.find({"_id": {"$in": message_ids}})
        return {doc["_id"] async for doc in cursor}

    async def forget_sent(self, message_ids: list[str]) -> None:
        if message_ids:
            await self.sent.delete_many({"_id": {"$in": message_ids}})


class _PrefetchedStore(ResourceStore):
    """A `ResourceStore` whose `vread` first looks among versions read in one query.

    Composing a message reads the appointment version it is about; for a
    batch, those versions are fetched together and composing finds them here.
    """

    def __init__(self, store: ResourceStore, versions: dict[str, Version]) -> None:
        super().__init__(store.database, store.indexer)
        self._versions = versions

    async def vread(self, resource_type: str, rid: str, version: int) -> Version:
        found = self._versions.get(f"{resource_type}/{rid}/{version}")
        if found is None or found.deleted:  # the store says why (unknown, or a deletion)
            return await super().vread(resource_type, rid, version)
        return found
