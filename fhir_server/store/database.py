"""Opening the MongoDB connection and learning what the server can do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from fhir_server.fhir.errors import ServiceUnavailable

# Resource types whose name is an SQL keyword: the embedded server (SQLite underneath)
# does not quote table names, so their rows live in a collection of another name.
_RENAMED = {"Group": "Group_"}


def collection_name(resource_type: str) -> str:
    """The collection holding a resource type's current rows."""
    return _RENAMED.get(resource_type, resource_type)


@dataclass
class Database:
    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    transactions: bool

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


async def connect(uri: str, name: str, *, transactions: bool | None = None) -> Database:
    """Connect and decide whether multi-document transactions are available.

    Transactions need a replica set or a sharded cluster. The embedded server
    accepts the transaction commands but does not isolate them from other
    connections, so it is treated as transactionless and the store falls back
    to compensating writes there.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=5000, tz_aware=True
    )
    try:
        hello = await client.admin.command("hello")
    except PyMongoError:
        await client.close()
        raise ServiceUnavailable(
            "The data store is not reachable; check FHIR_MONGODB_URI or start the server "
            "with 'fhir-server serve'."
        ) from None
    if transactions is None:
        transactions = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return Database(client=client, db=client[name], transactions=transactions)
