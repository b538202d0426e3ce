"""Versioned resource storage: current versions per type, every version in `history`.

A write replaces the current row on the condition that it still holds the
previous version (a create inserts it: its unique `_id` is the condition) and
inserts the history row keyed `Type/id/version`. Both writes belong to one
unit of work: a MongoDB transaction on a replica set (there the history row
goes first, its unique `_id` the compare-and-set between two writers of one
version), else the intent log (`store.intents`: the current row's
compare-and-set first, the history row after it), so a failure or a crash
leaves neither behind, or both.

Rows keep the resource body as its JSON text in `body`, not as a
sub-document: the embedded server decodes, converts and re-encodes every
field of every row it returns in Python, so one string per row costs it far
less than a nested body (reads and search pages are dominated by that cost).
Nothing queries inside the body; searches use the `idx` sub-document. Rows
written before (body in a `resource` sub-document) are still read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pymongo.errors import DuplicateKeyError, OperationFailure

from fhir_server.fhir.errors import BadRequest, Gone, NotFound, PreconditionFailed
from fhir_server.store import config_cache, write_observers
from fhir_server.store.clock import now_instant, to_instant
from fhir_server.store.database import Database, collection_name
from fhir_server.store.intents import PutRow, conflict
from fhir_server.store.unit_of_work import UnitOfWork, unit_of_work

Indexer = Callable[[dict[str, Any]], dict[str, Any]]
HISTORY = "history"
BODY = "body"
# How old a history row no current row reached must be before it counts as a dead writer's
# (the worker's batched message writes, which insert history first, outside the intent log).
ORPHAN_GRACE = timedelta(minutes=1)


def no_index(_resource: dict[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Version:
    """One version of a resource as stored: the body is None for a deletion."""

    resource_type: str
    id: str
    version: int
    updated: str
    deleted: bool
    resource: dict[str, Any] | None
    method: str = "PUT"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True)
class HistoryPage:
    rows: list[Version]
    total: int
    next_cursor: str | None


def order_key(instant: str) -> str:
    """The digits of a stored instant: ordered like it, but not mistaken for a date.

    The embedded server reads ISO-looking strings as dates and compares them to
    the second only, so versions written within one second would tie (and
    `_since`/paging would repeat rows). Digit strings compare exactly there,
    and as plain strings on MongoDB.
    """
    return "".join(c for c in instant if c.isdigit())


def _after_cursor(cursor: str) -> dict[str, Any]:
    at, _, key = cursor.partition(",")
    if not (at.isdigit() and key):
        raise BadRequest(
            "_before is not a paging cursor this server issued.", expression=("_before",)
        )
    return {"$or": [{"at": {"$lt": at}}, {"at": {"$eq": at}, "_id": {"$lt": key}}]}


def stamped(resource: dict[str, Any], rid: str, version: int, updated: str) -> dict[str, Any]:
    """The body as stored for a version: the server owns `id` and `meta.versionId/lastUpdated`."""
    meta = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": updated}
    return {**resource, "id": rid, "meta": meta}


def body_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The resource a fetched row holds: its `body` text, or an older row's sub-document."""
    text = doc.get(BODY)
    if text is not None:
        found: dict[str, Any] = orjson.loads(text)
        return found
    return doc.get("resource")


def _body_text(doc: dict[str, Any]) -> str | None:
    """A row's body as stored text (an older row's sub-document is encoded)."""
    if doc.get(BODY) is not None:
        return str(doc[BODY])
    return orjson.dumps(doc["resource"]).decode() if doc.get("resource") is not None else None


def current_row(
    rid: str, text: str | None, version: int, updated: str, idx: dict[str, Any] | None
) -> dict[str, Any]:
    """A current row; `idx` None for a deletion (which keeps the last body, unindexed)."""
    return {
        "_id": rid,
        BODY: text,
        "version": version,
        "updated": updated,
        "deleted": idx is None,
        "idx": idx if idx is not None else {},
    }


def first_row(resource: dict[str, Any], indexer: Indexer, updated: str) -> dict[str, Any]:
    """The current row a create of `resource` (with its id) at `updated` writes.

    For bulk loaders (the benchmarks) that insert rows directly: they get the
    stored layout from here instead of knowing it.
    """
    stored = stamped(resource, resource["id"], 1, updated)
    return current_row(stored["id"], orjson.dumps(stored).decode(), 1, updated, indexer(stored))


def history_row(row: Version) -> dict[str, Any]:
    """The history document of one version (`_id` Type/id/version)."""
    body = orjson.dumps(row.resource).decode() if row.resource is not None else None
    return {
        "_id": f"{row.resource_type}/{row.id}/{row.version}",
        "type": row.resource_type,
        "id": row.id,
        "version": row.version,
        "updated": row.updated,
        "at": order_key(row.updated),
        "deleted": row.deleted,
        "method": row.method,
        BODY: body,
    }


def version_from_current(resource_type: str, doc: dict[str, Any]) -> Version:
    """The `Version` a fetched current row holds (row builders and readers live together here,
    so batch writers such as `message_batches` keep this module's layout)."""
    return Version(
        resource_type=resource_type,
        id=doc["_id"],
        version=doc["version"],
        updated=doc["updated"],
        deleted=doc["deleted"],
        resource=None if doc["deleted"] else body_of(doc),
    )


def version_from_history(doc: dict[str, Any]) -> Version:
    return Version(
        resource_type=doc["type"],
        id=doc["id"],
        version=doc["version"],
        updated=doc["updated"],
        deleted=doc["deleted"],
        resource=body_of(doc),
        method=doc["method"],
    )


class ResourceStore:
    def __init__(self, database: Database, indexer: Indexer = no_index) -> None:
        self.database = database
        self.indexer = indexer
        self.history = database.db[HISTORY]

    def unit_of_work(self) -> Any:
        return unit_of_work(self.database)

    def collection(self, resource_type: str) -> Any:
        return self.database.db[collection_name(resource_type)]

    async def ensure_indexes(self) -> None:
        await self.history.create_index([("type", 1), ("at", -1)])
        await self.history.create_index([("at", -1)])
        await self.history.create_index([("type", 1), ("id", 1), ("version", -1)])

    # -- reads -------------------------------------------------------------

    async def current(
        self, resource_type: str, rid: str, uow: UnitOfWork | None = None
    ) -> Version | None:
        """The current row, deleted or not; None when the id was never written.

        Inside a unit of work the read joins its session, so on a replica set a
        transaction sees its own earlier writes. No projection: the embedded
        server applies projections in Python, which cost more than the bytes saved.
        """
        doc = await self._raw_current(resource_type, rid, uow)
        return version_from_current(resource_type, doc) if doc else None

    async def read(self, resource_type: str, rid: str, uow: UnitOfWork | None = None) -> Version:
        found = await self.current(resource_type, rid, uow)
        if found is None:
            raise NotFound(f"{resource_type}/{rid} is not known.")
        if found.deleted:
            raise Gone(f"{resource_type}/{rid} has been deleted.")
        return found

    async def vread(self, resource_type: str, rid: str, version: int) -> Version:
        doc = await self.history.find_one({"_id": f"{resource_type}/{rid}/{version}"})
        if doc is None:
            raise NotFound(f"{resource_type}/{rid} has no version {version}.")
        found = version_from_history(doc)
        if found.deleted:
            raise Gone(f"Version {version} of {resource_type}/{rid} is a deletion.")
        return found

    async def history_page(
        self,
        *,
        resource_type: str | None = None,
        rid: str | None = None,
        since: str | None = None,
        before: str | None = None,
        count: int = 20,
    ) -> HistoryPage:
        """Newest first, from a stored instant `since` on, after the cursor `before`.

        `before` is a `HistoryPage.next_cursor` from the previous page: paging
        walks backwards from one point in time, so versions written meanwhile
        never shift a page, and no row repeats.
        """
        base: dict[str, Any] = {}
        if resource_type:
            base["type"] = {"$eq": resource_type}
        if rid:
            base["id"] = {"$eq": rid}
        if since:
            base["at"] = {"$gte": order_key(since)}
        if count == 0:  # `_count=0`: the total only
            return HistoryPage([], await self.history.count_documents(base), None)
        query = {**base, **_after_cursor(before)} if before else base
        cursor = self.history.find(query).sort([("at", -1), ("_id", -1)]).limit(count + 1)
        docs = [doc async for doc in cursor]
        more = len(docs) > count
        rows = [version_from_history(doc) for doc in docs[:count]]
        total = await self.history.count_documents(base)
        next_cursor = f"{docs[count - 1]['at']},{docs[count - 1]['_id']}" if more else None
        return HistoryPage(rows, total, next_cursor)

    async def versions_from(self, resource_type: str, at: str, limit: int) -> list[Version]:
        """Versions of a type written at or after the order key `at`, oldest first: a forward
        scan for jobs that follow the writes (one indexed range query)."""
        cursor = (
            self.history.find({"type": {"$eq": resource_type}, "at": {"$gte": at}})
            .sort([("at", 1), ("_id", 1)])
            .limit(limit)
        )
        return [version_from_history(doc) async for doc in cursor]

    # -- writes ------------------------------------------------------------

    async def create(
        self, resource: dict[str, Any], *, rid: str | None = None, uow: UnitOfWork | None = None
    ) -> Version:
        return await self._write(
            resource["resourceType"], rid or str(uuid.uuid4()), resource, None, "POST", uow
        )

    async def update(
        self,
        resource: dict[str, Any],
        *,
        expected_version: int | None = None,
        uow: UnitOfWork | None = None,
    ) -> tuple[Version, bool]:
        """Replace (or create, for a new client-chosen id); returns (version, created)."""
        rtype, rid = resource["resourceType"], resource["id"]
        previous = await self._raw_current(rtype, rid, uow)
        current_version = previous["version"] if previous else None
        if expected_version is not None and expected_version != current_version:
            raise PreconditionFailed(
                f"{rtype}/{rid} is at version {current_version}, not {expected_version}."
            )
        created = previous is None or previous["deleted"]
        return await self._write(rtype, rid, resource, previous, "PUT", uow), created

    async def delete(
        self,
        resource_type: str,
        rid: str,
        *,
        expected_version: int | None = None,
        uow: UnitOfWork | None = None,
    ) -> Version | None:
        """Logical delete; None when there was nothing to delete."""
        previous = await self._raw_current(resource_type, rid, uow)
        if previous is None or previous["deleted"]:
            return None
        if expected_version is not None and expected_version != previous["version"]:
            raise PreconditionFailed(
                f"{resource_type}/{rid} is at version {previous['version']}, "
                f"not {expected_version}."
            )
        return await self._write(resource_type, rid, None, previous, "DELETE", uow)

    async def _raw_current(
        self, resource_type: str, rid: str, uow: UnitOfWork | None
    ) -> dict[str, Any] | None:
        """The current row, as the unit of work will leave it when it writes this one."""
        staged = uow.staged_row(resource_type, rid) if uow else None
        if staged is not None:
            return staged
        session = uow.session if uow else None
        doc: dict[str, Any] | None = await self.collection(resource_type).find_one(
            {"_id": rid}, session=session
        )
        return doc

    async def _write(
        self,
        rtype: str,
        rid: str,
        body: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        method: str,
        uow: UnitOfWork | None,
    ) -> Version:
        if uow is None:
            async with self.unit_of_work() as own:
                return await self._write(rtype, rid, body, previous, method, own)
        version = (previous["version"] if previous else 0) + 1
        updated = now_instant()
        stored = stamped(body, rid, version, updated) if body is not None else None
        row = Version(rtype, rid, version, updated, stored is None, stored, method)
        if stored is not None:
            text = orjson.dumps(stored).decode()
            new_row = current_row(rid, text, version, updated, self.indexer(stored))
        else:  # a deletion keeps the last body on the current row
            last = _body_text(previous) if previous else None
            new_row = current_row(rid, last, version, updated, None)
        if uow.deferred:
            self._stage(rtype, new_row, previous, history_row(row), uow)
            config_cache.written(self.database.db, rtype, uow)
            await write_observers.written(self, uow, row)
            return row
        try:
            await self.history.insert_one(history_row(row), session=uow.session)
            await self._put_current(rtype, new_row, previous, uow)
        except DuplicateKeyError:
            raise conflict(rtype, rid) from None
        except OperationFailure as exc:
            if exc.has_error_label("TransientTransactionError") or exc.code == 112:
                raise conflict(rtype, rid) from None
            raise
        config_cache.written(self.database.db, rtype, uow)
        await write_observers.written(self, uow, row)
        return row

    def _stage(
        self,
        rtype: str,
        row: dict[str, Any],
        previous: dict[str, Any] | None,
        history: dict[str, Any],
        uow: UnitOfWork,
    ) -> None:
        """Stage the write in the unit's intent (made when the unit ends)."""
        expect = previous["version"] if previous else None
        uow.staged.put(PutRow(rtype, row, expect, previous))
        uow.staged.history.append(history)
        self._remember(rtype, row, history)

    def _remember(self, rtype: str, row: dict[str, Any], history: dict[str, Any]) -> None:
        """A staged write's rows, for a view that keeps what it read (none here)."""

    async def reclaim_orphans(self, keys: list[str]) -> set[str]:
        """Remove the history rows among `keys` that no current row ever reached; those removed.

        Without transactions (the embedded store) a writer that dies between
        its history insert and its current-row write leaves such a row behind,
        and its unique key would refuse every later write of that version: the
        resource could never change again. Only rows older than ORPHAN_GRACE
        are taken, so a write still in flight keeps its row, and only while the
        current row is below their version: once it reached or passed it, the
        row is that version's real history.
        """
        cutoff = order_key(to_instant(datetime.now(UTC) - ORPHAN_GRACE))
        history = self.database.db[HISTORY]
        removed: set[str] = set()
        async for row in history.find({"_id": {"$in": keys}, "at": {"$lt": cutoff}}):
            current = await self.collection(row["type"]).find_one({"_id": row["id"]})
            if current and current["version"] >= row["version"]:
                continue  # this version did become current: a real row
            if (await history.delete_one({"_id": row["_id"], "at": row["at"]})).deleted_count:
                removed.add(row["_id"])
        return removed

    async def _put_current(
        self,
        rtype: str,
        row: dict[str, Any],
        previous: dict[str, Any] | None,
        uow: UnitOfWork,
    ) -> None:
        """Insert or replace the current row, only if it still holds the previous version
        (inside a transaction, which undoes it on failure)."""
        collection = self.collection(rtype)
        if previous is None:
            await collection.insert_one(row, session=uow.session)
            return
        result = await collection.replace_one(
            {"_id": row["_id"], "version": previous["version"]}, row, session=uow.session
        )
        if result.matched_count != 1:
            raise conflict(rtype, row["_id"])
