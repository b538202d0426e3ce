"""Store-side queries of the notifications: pending messages, due reminders, subscriptions.

Messages themselves are Communication resources written through the
`ResourceStore`; this module only finds them (the relay's scan) and keeps two
small bookkeeping collections that are not FHIR resources: reminder rows (one
per appointment and start time, holding the offsets still to send and when
the next is due, so the every-minute scan is one indexed range query on a
scalar) and browser push subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import ASCENDING

from fhir_server.store import config_cache
from fhir_server.store.clock import parse_instant, to_instant
from fhir_server.store.inserts import insert_new
from fhir_server.store.resources import ResourceStore, body_of

REMINDERS = "notification_reminders"
PUSH_SUBSCRIPTIONS = "notification_push_subscriptions"
_UNSENT = ["preparation", "in-progress"]


@dataclass(frozen=True)
class ReminderRow:
    """The reminders still to send for an appointment starting at `start` (UTC instant
    string): `offsets` in minutes before it, largest first; `due` is when the first is."""

    key: str
    appointment: str
    start: str
    offsets: tuple[int, ...]
    due: str

    def due_at(self, offset: int) -> str:
        return to_instant(parse_instant(self.start) - timedelta(minutes=offset))


class OutboxStore:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        self.reminders = store.database.db[REMINDERS]

    @property
    def push(self) -> Any:
        """Made when used: a booking records events without it (pymongo builds it anew)."""
        return self.store.database.db[PUSH_SUBSCRIPTIONS]

    async def ensure_indexes(self) -> None:
        # Explicit names: the embedded server changes array matching for fields
        # whose name ends an index name (see the brief's quirks).
        await self.store.collection("Communication").create_index(
            [("idx.s.status", ASCENDING), ("updated", ASCENDING)], name="outboxpending"
        )
        await self.reminders.create_index(
            [("state", ASCENDING), ("due", ASCENDING)], name="reminder_scan"
        )
        await self.push.create_index([("owner", ASCENDING)], name="push_by_owner")

    # -- messages ----------------------------------------------------------

    async def unsent_before(
        self, cutoff: str, limit: int = 500, *, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Communications still `preparation`/`in-progress` whose last write is before
        cutoff (and at or after `since`: the next page), oldest first."""
        updated = {"$lt": cutoff, **({"$gte": since} if since else {})}
        cursor = (
            self.store.collection("Communication")
            .find(
                {
                    "idx.s.status": {"$in": _UNSENT},
                    "updated": updated,
                    "deleted": {"$eq": False},
                },
            )
            .sort("updated", ASCENDING)
            .limit(limit)
        )
        return [body async for doc in cursor if (body := body_of(doc)) is not None]

    async def existing(self, resource_type: str, ids: list[str]) -> set[str]:
        """Which of these ids are already stored (one query for a whole event)."""
        cursor = self.store.collection(resource_type).find({"_id": {"$in": ids}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def live_subscriptions(self, resource_type: str | None) -> list[dict[str, Any]]:
        """Subscriptions (requested or active) whose criteria name this type (None: all)."""
        cursor = self.store.collection("Subscription").find(
            {"idx.s.status": {"$in": ["requested", "active"]}, "deleted": {"$eq": False}},
        )
        found = [body async for doc in cursor if (body := body_of(doc)) is not None]
        if resource_type is None:
            return found
        return [s for s in found if s.get("criteria", "").split("?")[0] == resource_type]

    async def event_subscriptions(self) -> list[dict[str, Any]]:
        """Every live Subscription, as an event matches them: kept per process for
        FHIR_CONFIG_CACHE_SECONDS (`config_cache`), since each booking asks."""
        return await config_cache.cached(
            self.store.database.db, "Subscription", "live", lambda: self.live_subscriptions(None)
        )

    # -- reminders ---------------------------------------------------------

    async def add_reminders(self, rows: list[ReminderRow]) -> int:
        """Insert reminder rows in one command (already known keys are kept as they are);
        how many were new.

        One row per appointment start, holding every offset: each stored document
        costs the embedded store about as much as a command.
        """
        docs = [
            {
                "_id": row.key,
                "appointment": row.appointment,
                "start": row.start,
                "offsets": list(row.offsets),
                "due": row.due,
                "state": "pending",
            }
            for row in rows
        ]
        return len(docs) - len(await insert_new(self.reminders, docs))

    async def due_reminders(self, now: str, limit: int = 500) -> list[ReminderRow]:
        """Pending rows whose next reminder is due (rows of one offset each, written
        before rows held several, read as rows of that one offset)."""
        cursor = (
            self.reminders.find({"state": {"$eq": "pending"}, "due": {"$lte": now}})
            .sort("due", ASCENDING)
            .limit(limit)
        )
        return [
            ReminderRow(
                d["_id"],
                d["appointment"],
                d["start"],
                tuple(d.get("offsets") or [d["offset"]]),
                d["due"],
            )
            async for d in cursor
        ]

    async def settle_reminder(self, row: ReminderRow, left: tuple[int, ...], state: str) -> bool:
        """Keep the row pending for the offsets `left`, or close it as `state` when none are;
        False when another scan already moved it on (a compare-and-set on its `due`)."""
        update: dict[str, Any] = (
            {"offsets": list(left), "due": row.due_at(left[0])} if left else {"state": state}
        )
        result = await self.reminders.update_one(
            {"_id": row.key, "state": "pending", "due": row.due}, {"$set": update}
        )
        return bool(result.modified_count == 1)

    # -- browser push subscriptions -----------------------------------------

    async def save_push_subscription(self, key: str, owner: str, info: dict[str, Any]) -> None:
        await self.push.replace_one(
            {"_id": key}, {"_id": key, "owner": owner, "subscription": info}, upsert=True
        )

    async def push_subscriptions(self, owner: str) -> list[dict[str, Any]]:
        cursor = self.push.find({"owner": {"$eq": owner}})
        return [doc["subscription"] async for doc in cursor]

    async def drop_push_subscription(self, key: str) -> None:
        await self.push.delete_one({"_id": key})
