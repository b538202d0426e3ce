"""The AuditEvent collection: each event written once, never versioned, never in `history`.

An AuditEvent is an immutable record, so it gets no history row: its row is
the current-row layout of `store.resources` at version 1 (reads and the
search engine work on it unchanged), and no `_history` of any level can list
it. Rows are inserted by the event's id, so relaying the same journal line
twice (a relay killed between inserting and noting its progress) leaves one
row.
"""

from __future__ import annotations

from typing import Any

from fhir_server.store.inserts import insert_new
from fhir_server.store.resources import ResourceStore, first_row

AUDIT_EVENT = "AuditEvent"


class AuditStore:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        self.events = store.collection(AUDIT_EVENT)

    async def ensure_indexes(self) -> None:
        """Also drops the history rows of AuditEvents written by earlier versions (through the
        versioned store, so `_history` listed them); their current rows hold the same bodies."""
        await self.store.history.delete_many({"type": {"$eq": AUDIT_EVENT}})

    def row(self, event: dict[str, Any]) -> dict[str, Any]:
        """The stored row of a finished AuditEvent (with its `id` and `recorded`): the indexing,
        about 0.1 ms of CPU, which a caller on an event loop may want to spread out."""
        return first_row(event, self.store.indexer, event["recorded"])

    async def insert(self, rows: list[dict[str, Any]]) -> int:
        """Store rows made by `row`; how many were new (an id already stored is kept as is)."""
        return len(rows) - len(await insert_new(self.events, rows))
