"""The worker process's connection to the store, opened once and reused by every task.

Celery tasks are synchronous; the store is async. Each worker process keeps
one event loop and one database connection (opened on the first task), so a
task costs a few store round trips, not a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.notifications.delivery import Context
from fhir_server.settings import Settings, get_settings
from fhir_server.store.connection import open_database
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_context: Context | None = None
_stack: contextlib.AsyncExitStack | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


async def open_context(settings: Settings, stack: contextlib.AsyncExitStack) -> Context:
    database = await stack.enter_async_context(open_database(settings))
    store = ResourceStore(database, indexer=ResourceIndexer(settings.base_url))
    outbox = OutboxStore(store)
    await outbox.ensure_indexes()
    return Context(settings=settings, store=store, outbox=outbox)


async def _get_context() -> Context:
    global _context, _stack
    if _context is None:
        _stack = contextlib.AsyncExitStack()
        _context = await open_context(get_settings(), _stack)
    return _context


def run(make: Any) -> Any:
    """Run `make(context)` (a coroutine factory) on the process's loop."""

    async def body() -> Any:
        return await make(await _get_context())

    return _event_loop().run_until_complete(body())


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    return _event_loop().run_until_complete(coroutine)
