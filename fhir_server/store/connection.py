"""Resolving where the store is: a configured MongoDB, or the embedded server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from pymongo.errors import ConnectionFailure

from fhir_server.settings import Settings
from fhir_server.store import embedded
from fhir_server.store.database import Database, connect

# The driver's errors that mean "the store cannot be reached now" (its
# ServerSelectionTimeoutError, AutoReconnect and NetworkTimeout are kinds of
# ConnectionFailure): the edge answers them 503 with Retry-After, never 500.
UNREACHABLE: tuple[type[Exception], ...] = (ConnectionFailure,)
# Seconds a client is asked to wait: a supervised embedded store is back within 5 s.
RETRY_AFTER_SECONDS = 5


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """Connect to FHIR_MONGODB_URI, or reuse/start the embedded server for the data dir."""
    server = None
    uri = settings.mongodb_uri
    if uri is None:
        server = embedded.start(settings.data_dir)
        uri = server.uri
    try:
        database = await connect(uri, settings.database, transactions=settings.use_transactions)
        try:
            yield database
        finally:
            await database.close()
    finally:
        if server is not None:
            embedded.stop(server, settings.data_dir)
