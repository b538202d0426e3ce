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
        outcome = await intents.finish(db, staged)
        if outcome == intents.FORWARD:
            done.forward += _ids(staged)
        elif outcome == intents.BACK:
            done.back += _ids(staged)
        await db[intents.COLLECTION].delete_one({"_id": doc["_id"], "n": doc["n"]})
    if done.forward or done.back:
        log.warning(
            "Recovered units of work cut short: rolled forward %s; rolled back %s",
            sorted(set(done.forward)),
            sorted(set(done.back)),
        )
    return done


def _ids(staged: intents.Staged) -> list[str]:
    """The resources a unit writes, as `Type/id` (ids only: no content reaches the log)."""
    return [
        f"{op.collection}/{op.row['_id']}" for op in staged.ops if isinstance(op, intents.PutRow)
    ]
