"""Finishing or undoing the units of work a crash cut short (see `store.intents`).

Run once when the app starts and every minute by the beat (with the hold
release), and for one Idempotency-Key when a retry finds its first request
unfinished. An intent older than the grace is settled:

- past its commit point (one of its history rows is stored): rolled forward,
  i.e. its missing history rows inserted and its key's result recorded;
- before it: rolled back, i.e. each compare-and-set that still holds what the
  unit wrote is undone, last first, and the key's reservation released.

Either way its intent row goes. Every repair is logged with the ids it
touched (resource ids, never content).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.store import intents
from fhir_server.store.clock import to_instant
from fhir_server.store.database import Database
from fhir_server.store.patient_claims import ClaimMinutes, ReleaseMinutes
from fhir_server.store.resources import order_key

log = logging.getLogger(__name__)

_KINDS: dict[str, Any] = {
    kind.kind: kind.from_doc for kind in (intents.PutRow, ClaimMinutes, ReleaseMinutes)
}


@dataclass
class Settled:
    """What a pass repaired: the resources of units rolled forward and of units rolled back."""

    forward: list[str] = field(default_factory=list)
    back: list[str] = field(default_factory=list)


async def settle(
    database: Database, *, older_than: float = intents.GRACE_SECONDS, key: str | None = None
) -> Settled:
    """Settle every intent written more than `older_than` seconds ago (of one key: `key`)."""
    db = database.db
    cutoff = order_key(to_instant(datetime.now(UTC) - timedelta(seconds=older_than)))
    query: dict[str, Any] = {"at": {"$lt": cutoff}}
    if key is not None:
        query["key"] = {"$eq": key}
    done = Settled()
    async for doc in db[intents.COLLECTION].find(query):
        staged = intents.staged_from(doc, _KINDS)
        stored = await _stored(db, staged.history)
        # The commit point: one of its history rows is stored (they follow every compare-and-set).
        if any(stored.get(row["_id"]) == row["updated"] for row in staged.history):
            if await _roll_forward(db, staged, stored):
                done.forward += _ids(staged)
        else:
            await intents.undo(db, staged.ops, staged.key)
            done.back += _ids(staged)
        await db[intents.COLLECTION].delete_one({"_id": doc["_id"], "n": doc["n"]})
    if done.forward or done.back:
        log.warning(
            "Recovered units of work cut short: rolled forward %s; rolled back %s",
            sorted(set(done.forward)),
            sorted(set(done.back)),
        )
    return done


async def _stored(db: Any, history: list[dict[str, Any]]) -> dict[str, str]:
    """The `updated` of each of these history rows that is stored, by key."""
    if not history:
        return {}
    keys = [row["_id"] for row in history]
    cursor = db[intents.HISTORY].find({"_id": {"$in": keys}}, {"updated": 1})
    return {row["_id"]: row["updated"] async for row in cursor}


async def _roll_forward(db: Any, staged: intents.Staged, stored: dict[str, str]) -> bool:
    """Write what is missing past the commit point; whether anything was."""
    missing = [row for row in staged.history if stored.get(row["_id"]) != row["updated"]]
    await intents.insert_history(db, missing)
    repaired = bool(missing)
    if staged.key is not None:
        record = await db[intents.KEYS].find_one({"_id": staged.key.key})
        if record is None or not record.get("done"):
            await staged.key.apply(db)
            repaired = True
    return repaired


def _ids(staged: intents.Staged) -> list[str]:
    """The resources a unit writes, as `Type/id` (ids only: no content reaches the log)."""
    return [
        f"{op.collection}/{op.row['_id']}" for op in staged.ops if isinstance(op, intents.PutRow)
    ]
