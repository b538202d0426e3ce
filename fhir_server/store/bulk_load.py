"""Inserting many resources at once as their first version (current and history rows).

For records written in bulk rather than one request at a time: the demo's
past appointments (an EHR's sync of the past) and the benchmarks. Rows already
stored are kept as they are, so loading twice adds nothing. The history rows
are ordinary ones, so the jobs that follow the history (reminders, report
rollups) see these versions like any other.
"""

from __future__ import annotations

from typing import Any

from fhir_server.store.inserts import insert_new
from fhir_server.store.resources import ResourceStore, Version, first_row, history_row, stamped

_CHUNK = 1000


async def insert_first_versions(
    store: ResourceStore, resources: list[tuple[dict[str, Any], str]], *, current: bool = True
) -> int:
    """Insert each resource (with its id) as version 1 written at the instant paired with it;
    how many were new. `current=False` writes the history rows only (a benchmark of what
    reads the history alone)."""
    added = 0
    for start in range(0, len(resources), _CHUNK):
        chunk = resources[start : start + _CHUNK]
        history = [
            history_row(
                Version(r["resourceType"], r["id"], 1, at, False, stamped(r, r["id"], 1, at))
            )
            for r, at in chunk
        ]
        kept = await insert_new(store.history, history)
        new = [pair for n, pair in enumerate(chunk) if n not in kept]
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource, at in new if current else []:
            by_type.setdefault(resource["resourceType"], []).append(
                first_row(resource, store.indexer, at)
            )
        for rtype, rows in by_type.items():
            await insert_new(store.collection(rtype), rows)
        added += len(new)
    return added
