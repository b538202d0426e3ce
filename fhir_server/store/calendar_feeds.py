"""The private calendar feed tokens: one per owner (a Practitioner or Patient), stored hashed.

`{_id: "Practitioner/1", hash: <SHA-256 of the token>, issued: <epoch seconds>}` in
`calendar_feeds`. Issuing replaces the owner's document in one write, so the
previous URL stops working at once (revoking is issuing anew, or deleting);
the token itself is only ever in the URL handed to its owner.
"""

from __future__ import annotations

import secrets
import time

from fhir_server.store.auth_store import digest
from fhir_server.store.database import Database


class CalendarFeeds:
    def __init__(self, database: Database) -> None:
        self.feeds = database.db["calendar_feeds"]

    async def ensure_indexes(self) -> None:
        await self.feeds.create_index([("hash", 1)])

    async def issue(self, owner: str) -> str:
        """A new token for the owner's feed; any earlier one no longer opens it."""
        token = secrets.token_urlsafe(32)
        # `_id` repeated in the document: the embedded server's upsert does not take it from the
        # filter.
        document = {"_id": owner, "hash": digest(token), "issued": int(time.time())}
        await self.feeds.replace_one({"_id": owner}, document, upsert=True)
        return token

    async def revoke(self, owner: str) -> bool:
        """Close the owner's feed; False when there was none."""
        result = await self.feeds.delete_one({"_id": owner})
        return bool(result.deleted_count)

    async def owner_of(self, token: str) -> str | None:
        """Whose feed a token opens, or None (unknown or revoked)."""
        found = await self.feeds.find_one({"hash": {"$eq": digest(token)}}, {"_id": 1})
        return str(found["_id"]) if found else None
