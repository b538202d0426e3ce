"""An export reads its rows in keyset pages: every query the store answers is bounded by the
last id seen and a page size, so no query asks the store for a whole type (the embedded store
builds a query's whole result in its memory before answering). On the real store, watching
every command the driver sends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent, CommandSucceededEvent

from fhir_server.store.export_store import keyset_pages


class Finds(CommandListener):
    """The `find` commands sent and how many documents each answered."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.answered: list[int] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.sent.append(dict(event.command))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if event.command_name in ("find", "getMore"):
            cursor = event.reply.get("cursor", {})
            self.answered.append(len(cursor.get("firstBatch", cursor.get("nextBatch", []))))

    def failed(self, event: Any) -> None:
        return


@pytest.mark.parametrize("after", [None, "p-007"])
def test_pages_bounded_by_the_last_id_and_the_page_size(mongo_uri: str, after: str | None) -> None:
    async def run() -> tuple[list[str], Finds]:
        finds = Finds()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_uri, event_listeners=[finds]
        )
        try:
            collection = client[f"pages{uuid.uuid4().hex[:12]}"]["Patient"]
            rows = [{"_id": f"p-{i:03d}", "kept": i % 3 != 0} for i in range(40)]
            await collection.insert_many(rows)
            found = [r["_id"] async for r in keyset_pages(collection, {"kept": True}, after, 4)]
            return found, finds
        finally:
            await client.close()

    found, finds = asyncio.run(run())
    start = -1 if after is None else int(after[2:])
    assert found == [f"p-{i:03d}" for i in range(start + 1, 40) if i % 3 != 0]
    assert len(finds.sent) >= len(found) / 4  # one query a page
    assert all(command["limit"] <= 5 for command in finds.sent)
    assert max(finds.answered) <= 5
    bounds = [command.get("min", {}).get("_id") for command in finds.sent]
    assert bounds[0] == after and all(b is not None for b in bounds[1:])
    assert bounds[1:] == sorted(bounds[1:])  # each page starts where the last one ended
