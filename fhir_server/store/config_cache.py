"""Per-process caches of the configuration a booking reads: Schedules, live Subscriptions.

Every booking reads its Slots' Schedule (rules, actors) and the list of live
Subscriptions (outbox rows for EHRs); both change a few times a day, and on
the embedded store each read is a round trip that costs as much CPU as the
rest of the booking. This process keeps what it read for
`FHIR_CONFIG_CACHE_SECONDS` (the way HAPI FHIR keeps its subscription
registry in memory and refreshes it periodically):

- a write of a cached type through this process (any `ResourceStore` write,
  API or not) drops that type's entries at once, again after its unit of
  work commits (a transaction's write is invisible to others until then) and
  when it is undone; a load that started before such a drop is not kept, so
  it cannot put the old value back;
- a write by another process (another API server, the worker marking a
  Subscription `error`) is seen when the entry expires, at most that many
  seconds later. Until then a Schedule made inactive there may still take a
  booking here, and a new Subscription there may miss an event here.

Off (0) until the composition root calls `configure`: workers and CLI
commands read fresh. Entries are per database (client seeds and name), so
tests on separate databases never share them. Callers must not mutate what
they get back: the same objects are handed to every request.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.store.unit_of_work import UnitOfWork

CACHED_TYPES = frozenset({"Schedule", "Subscription"})
T = TypeVar("T")

_seconds = 0.0


@dataclass
class _Cache:
    """One database's entries: type -> key -> (expiry, value), and a generation per type.

    Dropping a type is one `pop` (no iteration), so a write in another thread of
    the process (a test's own loop, say) cannot trip a lookup.
    """

    entries: dict[str, dict[str, tuple[float, Any]]] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)

    def drop(self, resource_type: str) -> None:
        self.generations[resource_type] = self.generations.get(resource_type, 0) + 1
        self.entries.pop(resource_type, None)


_caches: weakref.WeakKeyDictionary[AsyncDatabase[Any], _Cache] = weakref.WeakKeyDictionary()


def configure(seconds: float) -> None:
    """How long this process keeps entries (0: not at all); set by the composition root."""
    global _seconds
    _seconds = max(float(seconds), 0.0)
    if not _seconds:
        for cache in _caches.values():
            cache.entries.clear()


def _cache(db: AsyncDatabase[Any]) -> _Cache:
    found = _caches.get(db)
    if found is None:
        found = _caches[db] = _Cache()
    return found


async def cached(
    db: AsyncDatabase[Any], resource_type: str, key: str, load: Callable[[], Awaitable[T]]
) -> T:
    """`load()`'s value, from the cache while fresh; `resource_type` is what invalidates it."""
    if not _seconds:
        return await load()
    cache = _cache(db)
    entry = cache.entries.get(resource_type, {}).get(key)
    now = time.monotonic()
    if entry is not None and entry[0] > now:
        value: T = entry[1]
        return value
    generation = cache.generations.get(resource_type, 0)
    value = await load()
    if cache.generations.get(resource_type, 0) == generation:
        cache.entries.setdefault(resource_type, {})[key] = (now + _seconds, value)
    return value


def written(db: AsyncDatabase[Any], resource_type: str, uow: UnitOfWork) -> None:
    """A write of `resource_type` in `uow`: drop its entries now, at commit and on undo."""
    if resource_type not in CACHED_TYPES or db not in _caches:
        return
    cache = _caches[db]
    cache.drop(resource_type)

    async def drop() -> None:
        cache.drop(resource_type)

    uow.after_commit.append(drop)
    uow.on_failure(drop)
