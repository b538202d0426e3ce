"""The handler that turns the booking engine's domain events into stored messages.

The engine (`scheduling.booking`) names what happened (`scheduling.events`);
this module maps each event to the notification event code of the messages
(`codes.EVENTS`) and records them in the booking's unit of work through
`events.record_event`. `install` subscribes it; every process that books or
expires holds (the app, the worker, the CLI) calls it at start.
"""

from __future__ import annotations

from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.scheduling import events as booking_events
from fhir_server.store.resources import ResourceStore
from fhir_server.store.unit_of_work import UnitOfWork

_KINDS: dict[type[booking_events.BookingEvent], str] = {
    booking_events.Booked: "booked",
    booking_events.Pending: "pending",
    booking_events.Confirmed: "confirmed",
    booking_events.Declined: "declined",
    booking_events.Cancelled: "cancelled",
    booking_events.Rescheduled: "rescheduled",
    booking_events.HoldExpired: "hold-expired",
}


def notification_of(event: booking_events.BookingEvent) -> AppointmentEvent:
    """The notification event (code and details) a booking event is announced as."""
    kind = _KINDS[type(event)]
    if isinstance(event, booking_events.Rescheduled):
        return AppointmentEvent(kind, event.appointment, previous=event.previous)
    if isinstance(event, booking_events.Cancelled):
        return AppointmentEvent(kind, event.appointment, cancelled_by=event.cancelled_by)
    return AppointmentEvent(kind, event.appointment)


async def record_booking_event(
    store: ResourceStore, uow: UnitOfWork, event: booking_events.BookingEvent
) -> list[str]:
    """Store the event's messages in the booking's unit of work; their ids.

    The Appointment version an event reports was written in this unit of work,
    so no message keyed by it can exist yet (`fresh`), except for a deletion,
    which reports the last stored version.
    """
    if type(event) not in _KINDS:  # not announced (a recorded outcome)
        return []
    fresh = not (isinstance(event, booking_events.Cancelled) and event.deleted)
    return await record_event(store, uow, notification_of(event), fresh=fresh)


def install() -> None:
    """Send the booking engine's events to the notifications (idempotent)."""
    booking_events.subscribe(record_booking_event)
