"""Event numbers of topic-based Subscriptions: one counter per Subscription.

The Backport IG numbers each Subscription's notification events 1, 2, ... so
a receiver can tell it missed one (and ask `$status`). The counter is bumped
with one atomic `$inc` when the event is recorded, inside the recording's
transaction when the store has them. On the embedded store (no isolation,
compensating undo) a failed recording leaves a gap rather than risking two
events with one number: a decrement could hand out a number already taken.
"""

from __future__ import annotations

from pymongo import ReturnDocument

from fhir_server.store.resources import ResourceStore
from fhir_server.store.unit_of_work import UnitOfWork

COUNTS = "notification_subscription_events"


async def next_number(store: ResourceStore, subscription_id: str, uow: UnitOfWork) -> int:
    """Count one more event for the Subscription; its number."""
    found = await store.database.db[COUNTS].find_one_and_update(
        {"_id": subscription_id},
        {"$inc": {"count": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=uow.session,
    )
    assert found is not None  # an upsert returning the document after always has one
    return int(found["count"])


async def events_since_start(store: ResourceStore, subscription_id: str) -> int:
    found = await store.database.db[COUNTS].find_one({"_id": subscription_id})
    return int(found["count"]) if found else 0
