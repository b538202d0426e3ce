"""One booking request's view of the store: each row read once, new rows inserted in batches.

A booking touches a dozen rows (Slot, Schedule, PractitionerRole, the new
Appointment, its Communications and their history rows), and on the
embedded store every command costs about as much store and server CPU as
the rest of the request. This view keeps the `ResourceStore` API and row
layout (it subclasses it and only changes how rows reach the driver):

- an identity map: a row fetched by id is not fetched again in the request
  (the engine's rules and the notification recipients read the same
  PractitionerRole; an update re-reads the row it is replacing). A cached row
  is only ever written back through a compare-and-set on its version, so
  reading it once more would decide nothing;
- inside a transaction (a replica set), inserts of new rows (current rows of
  creates, every history row) are kept and written by `flush`, one
  `insert_many` per collection. Replacements of existing rows (a Slot claim)
  still go out at once: they are the compare-and-set. A create's unique `_id`
  is still its compare-and-set, only checked at `flush`, which turns a
  duplicate into 409. Without transactions every write is staged in the unit
  of work and made through its intent (`store.intents`); the view only keeps
  the staged rows, so what the request reads back is what it wrote.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from pymongo.errors import BulkWriteError, OperationFailure

from fhir_server.fhir.errors import Conflict
from fhir_server.store.resources import HISTORY, ResourceStore
from fhir_server.store.unit_of_work import UnitOfWork

_DUPLICATE_KEY = 11000


class _Rows:
    """A collection as the request sees it: cached reads by id, buffered inserts."""

    def __init__(self, real: Any, cache: dict[Any, Any], pending: list[dict[str, Any]]) -> None:
        self.real = real
        self.cache = cache
        self.pending = pending

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def find_one(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        key = query.get("_id") if list(query) == ["_id"] and not args else None
        if not isinstance(key, str):
            return await self.real.find_one(query, *args, **kwargs)
        if key not in self.cache:
            self.cache[key] = await self.real.find_one(query, **kwargs)
        return self.cache[key]

    async def insert_one(self, document: dict[str, Any], **_session: Any) -> None:
        self.pending.append(document)
        self.cache[document["_id"]] = document

    async def replace_one(
        self, query: dict[str, Any], document: dict[str, Any], **kwargs: Any
    ) -> Any:
        result = await self.real.replace_one(query, document, **kwargs)
        key = query.get("_id")
        if result.matched_count == 1:
            self.cache[key] = document
        else:
            self.cache.pop(key, None)
        return result


class RequestStore(ResourceStore):
    """A `ResourceStore` for one request; call `flush` before its unit of work ends."""

    def __init__(self, base: ResourceStore) -> None:
        super().__init__(base.database, base.indexer)
        self._cache: dict[str, dict[Any, Any]] = defaultdict(dict)
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._rows: dict[str, _Rows] = {}
        self.history = cast(Any, _Rows(base.history, self._cache[HISTORY], self._pending[HISTORY]))

    def collection(self, resource_type: str) -> Any:
        """The type's collection as this request sees it (made once: pymongo builds a
        collection object anew on every lookup, and a booking looks up a dozen)."""
        rows = self._rows.get(resource_type)
        if rows is None:
            rows = self._rows[resource_type] = _Rows(
                super().collection(resource_type),
                self._cache[resource_type],
                self._pending[resource_type],
            )
        return rows

    def _remember(self, rtype: str, row: dict[str, Any], history: dict[str, Any]) -> None:
        """What the request wrote is what it reads back."""
        self._cache[rtype][row["_id"]] = row
        self._cache[HISTORY][history["_id"]] = history

    async def flush(self, uow: UnitOfWork) -> None:
        """Write the buffered inserts, current rows first (a create's `_id` is its claim);
        nothing is buffered outside a transaction (the unit of work stages the writes)."""
        for name in sorted(self._pending, key=lambda name: name == HISTORY):
            rows = list(self._pending[name])
            self._pending[name].clear()
            if not rows:
                continue
            try:
                rows_of = self.history if name == HISTORY else self.collection(name)
                await rows_of.real.insert_many(rows, ordered=False, session=uow.session)
            except BulkWriteError as exc:
                if all(e.get("code") == _DUPLICATE_KEY for e in exc.details["writeErrors"]):
                    raise _conflict() from None
                raise
            except OperationFailure as exc:
                if exc.has_error_label("TransientTransactionError"):
                    raise _conflict() from None
                raise


def _conflict() -> Conflict:
    return Conflict("A resource of this request was written by another request; retry.")


def request_store(store: ResourceStore) -> RequestStore:
    """The store as one request sees it (the same view when already one)."""
    return store if isinstance(store, RequestStore) else RequestStore(store)
