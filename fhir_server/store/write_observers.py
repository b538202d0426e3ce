"""Callbacks told of every version written of a resource type, inside its unit of work.

For effects that must commit with a write whichever way it was made (a REST
interaction, a transaction Bundle entry, a domain engine writing records of
its own): the notifications record the rest-hook messages of Encounter and
ChargeItem changes this way, in the same unit of work, so a message exists
if and only if its version does (a transactional outbox, as for bookings).
The store knows nothing of who observes: the composition root of each
process registers them (`observe`), the way it subscribes the booking
engine's event handlers. An observer may write in the unit of work, but not
the types it observes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fhir_server.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from fhir_server.store.resources import ResourceStore, Version

Observer = Callable[["ResourceStore", UnitOfWork, "Version"], Awaitable[Any]]

_observers: dict[str, list[Observer]] = {}


def observe(resource_type: str, observer: Observer) -> None:
    """Tell `observer` of every version of the type written from now on (once, however often
    it is registered)."""
    registered = _observers.setdefault(resource_type, [])
    if observer not in registered:
        registered.append(observer)


async def written(store: ResourceStore, uow: UnitOfWork, version: Version) -> None:
    """Called by the store after it wrote (or staged) `version` in `uow`."""
    for observer in _observers.get(version.resource_type, ()):
        await observer(store, uow, version)
