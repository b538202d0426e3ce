"""Inserting rows some of which may already be stored (an id is the row's claim or its
idempotency key): the rows already there are kept as they are, and said which."""

from __future__ import annotations

from typing import Any

from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


async def insert_new(collection: Any, rows: list[dict[str, Any]], session: Any = None) -> set[int]:
    """Insert the rows in one command; the positions of those whose `_id` (or other unique
    key) was already taken. Any other write error is raised."""
    if not rows:
        return set()
    try:
        await collection.insert_many(rows, ordered=False, session=session)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {int(e["index"]) for e in errors}
    return set()
