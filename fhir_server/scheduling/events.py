"""What the booking engine reports: domain events, and the handlers they go to.

The engine states facts (a booking was made, cancelled, moved, confirmed,
declined, or a hold expired) as plain dataclasses; it neither knows nor
decides who is told. Handlers subscribed at the composition root (the app,
the worker, the CLI) turn them into effects, e.g. `notifications.changes`
stores the messages. A handler runs inside the booking's unit of work, so
what it writes commits with the booking or not at all (a transactional
outbox, as cosmicpython's message bus does with its unit of work).

    BookingEvent            appointment: the version just written
    ├── Booked              a new booking (or a hold booked)
    ├── Pending             a new booking waiting for the provider
    ├── Confirmed           the provider confirmed a pending booking
    ├── Declined            a participant declined a pending booking
    ├── Cancelled           cancelled (or deleted) by the patient or the clinic
    ├── Rescheduled         moved, in place or into a new Appointment (previous: before)
    ├── HoldExpired         a hold was given up or lapsed
    └── OutcomeChanged      the clinic recorded or corrected what happened on the day
                            (arrived, checked-in, fulfilled, noshow, or back out of them)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fhir_server.fhir.resource import Resource
from fhir_server.store.resources import ResourceStore
from fhir_server.store.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class BookingEvent:
    """An Appointment changed; `appointment` is the version written (with id and versionId)."""

    appointment: Resource


@dataclass(frozen=True)
class Booked(BookingEvent):
    pass


@dataclass(frozen=True)
class Pending(BookingEvent):
    pass


@dataclass(frozen=True)
class Confirmed(BookingEvent):
    pass


@dataclass(frozen=True)
class Declined(BookingEvent):
    pass


@dataclass(frozen=True)
class HoldExpired(BookingEvent):
    pass


@dataclass(frozen=True)
class Cancelled(BookingEvent):
    """`cancelled_by` is `patient` or `clinic`; `deleted`: the Appointment was deleted.

    A deleted Appointment is reported with its last content, status `cancelled`.
    """

    cancelled_by: str
    deleted: bool = False


@dataclass(frozen=True)
class Rescheduled(BookingEvent):
    """`previous` is the Appointment's version before the move, or the one it replaced."""

    previous: Resource


@dataclass(frozen=True)
class OutcomeChanged(BookingEvent):
    """The status entered or left one the clinic records on the day (`CLINIC_MARKS`).

    `previous` is the version before. A deleted Appointment that had such a status
    is reported with its last content, status `entered-in-error`. Nobody is told
    (no message); what a visit leaves behind (Encounter, charges) follows it.
    """

    previous: Resource


EventHandler = Callable[[ResourceStore, UnitOfWork, BookingEvent], Awaitable[object]]

_handlers: list[EventHandler] = []


def subscribe(handler: EventHandler) -> None:
    """Send every event to `handler` from now on (once, however often it is subscribed)."""
    if handler not in _handlers:
        _handlers.append(handler)


async def publish(store: ResourceStore, uow: UnitOfWork, event: BookingEvent | None) -> None:
    """Hand the event to every subscribed handler, inside the booking's unit of work."""
    if event is None:
        return
    for handler in _handlers:
        await handler(store, uow, event)
