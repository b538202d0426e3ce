"""Running a store-level scenario on its own fresh database of the session's embedded store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore

Scenario = Callable[[ResourceStore], Awaitable[None]]


def run(mongo_uri: str, scenario: Scenario) -> None:
    async def main() -> None:
        database = await connect(mongo_uri, f"t{uuid.uuid4().hex[:12]}")
        try:
            await scenario(ResourceStore(database))
        finally:
            await database.close()

    asyncio.run(main())
