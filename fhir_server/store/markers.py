"""Named facts a database keeps about the jobs run on it, one row each (`store_markers`).

A one-off migration records that it is done, and a job that follows the
history records how far it has read, so neither redoes its work on every
start or run, on one server process or many.
"""

from __future__ import annotations

from typing import Any

from fhir_server.store.resources import ResourceStore

COLLECTION = "store_markers"


async def read(store: ResourceStore, name: str) -> dict[str, Any] | None:
    """The marker row `name`, or None when the job has never recorded it."""
    found: dict[str, Any] | None = await store.database.db[COLLECTION].find_one({"_id": name})
    return found


async def write(store: ResourceStore, name: str, fields: dict[str, Any]) -> None:
    """Replace the marker row `name` with these fields."""
    await store.database.db[COLLECTION].replace_one(
        {"_id": name}, {"_id": name, **fields}, upsert=True
    )
