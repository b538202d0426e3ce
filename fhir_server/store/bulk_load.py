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
    store: ResourceStore, resources: list[dict[str, Any]], updated: str
) -> int:
    """Insert each resource (with its id) as version 1 written at `updated`; how many were new."""
    added = 0
    for start in range(0, len(resources), _CHUNK):
        chunk = resources[start : start + _CHUNK]
        history = [
            history_row(
                Version(
                    r["resourceType"], r["id"], 1, updated, False, stamped(r, r["id"], 1, updated)
                )
            )
            for r in chunk
        ]
        kept = await insert_new(store.history, history)
        new = [r for n, r in enumerate(chunk) if n not in kept]
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource in new:
            by_type.setdefault(resource["resourceType"], []).append(
                first_row(resource, store.indexer, updated)
            )
        for rtype, rows in by_type.items():
            await insert_new(store.collection(rtype), rows)
        added += len(new)
    return added
