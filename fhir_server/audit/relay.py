"""Moving journaled AuditEvents into the store: a background task of each API process.

The task runs beside the server for its whole life (`audit_trail`): every
`RELAY_SECONDS` it stores this process's new journal lines and the files of
processes that died on the same data directory; at shutdown it stores what is
left. A store that is down only delays the events: the lines stay in the
journal and are tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fhir_server.audit.journal import Journal
from fhir_server.settings import Settings
from fhir_server.store.audit_store import AuditStore
from fhir_server.store.resources import ResourceStore

log = logging.getLogger("fhir_server.audit")

RELAY_SECONDS = 0.5
CHUNK = 8


class AuditRelay:
    def __init__(self, journal: Journal, store: AuditStore) -> None:
        self.journal = journal
        self.store = store

    async def relay(self) -> int:
        """Store every complete journal line on this data directory; how many were new."""
        batch = self.journal.pending()
        stored = await self._insert(batch.events)
        self.journal.done(batch)
        for orphan, fd in self.journal.orphans():
            try:
                stored += await self._insert(orphan.events)
            except BaseException:
                Journal.release(fd)
                raise
            Journal.forget(orphan, fd)
        return stored

    async def _insert(self, events: list[dict[str, Any]]) -> int:
        """Indexing an event takes the event loop for about 0.1 ms: the requests waiting on the
        loop go between two events. Rows go to the store `CHUNK` at a time: one command's own
        cost (about 1.5 ms of CPU) is shared, and the embedded store, which runs one command
        at a time, keeps the requests waiting behind a chunk to a few milliseconds."""
        stored = 0
        rows: list[dict[str, Any]] = []
        for number, event in enumerate(events, 1):
            rows.append(self.store.row(event))
            await asyncio.sleep(0)
            if len(rows) == CHUNK or number == len(events):
                stored += await self.store.insert(rows)
                rows = []
        return stored

    async def forever(self) -> None:
        while True:
            await asyncio.sleep(RELAY_SECONDS)
            try:
                await self.relay()
            except Exception as exc:  # the store is down: the journal keeps the events
                log.warning("audit relay failed (%s); will retry", type(exc).__name__)


@contextlib.asynccontextmanager
async def audit_trail(store: ResourceStore, settings: Settings) -> AsyncIterator[Journal]:
    """This process's journal, relayed for the duration; at exit the rest is stored and the
    journal closed."""
    journal = Journal(journal_dir(settings))
    audit_store = AuditStore(store)
    await audit_store.ensure_indexes()
    relay = AuditRelay(journal, audit_store)
    await relay.relay()  # what processes that died before this one left behind
    task = asyncio.create_task(relay.forever())
    try:
        yield journal
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await relay.relay()
        except Exception as exc:  # the journal keeps them for the next start
            log.warning("audit relay at shutdown failed (%s)", type(exc).__name__)
        journal.close()


def journal_dir(settings: Settings) -> Path:
    return settings.data_dir / "audit-journal"
