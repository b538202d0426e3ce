"""The handlers that turn changes into stored messages: booking events and record writes.

The engine (`scheduling.booking`) names what happened (`scheduling.events`);
this module maps each event to the notification event code of the messages
(`codes.EVENTS`) and records them in the booking's unit of work through
`events.record_event`. Encounters and ChargeItems (`visits`, or any write of
them) have no events: every version written of them is one change
(`record_change`, a store write observer), told to the R4 Subscriptions
whose criteria it matches and whose owner may read it, in the same unit of
work; a deletion tells nothing (the visits never delete, they mark records
`entered-in-error`, which is a change like any other). `install` subscribes
both; every process that books, expires holds or records outcomes (the app,
the worker, the CLI) calls it at start.
"""

from __future__ import annotations

from typing import Any

from fhir_server.notifications import celery_app
from fhir_server.notifications.codes import CHANGED, RESTHOOK
from fhir_server.notifications.events import AppointmentEvent, follows, record_event, store_messages
from fhir_server.notifications.message import Message
from fhir_server.notifications.owners import may_see
from fhir_server.notifications.topics import TopicError, compile_filters, is_topic_based, topic_of
from fhir_server.scheduling import events as booking_events
from fhir_server.store import write_observers
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork

# Types whose every written version is a change told to the Subscriptions following them.
FOLLOWED_WRITES = ("Encounter", "ChargeItem")

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


async def record_change(store: ResourceStore, uow: UnitOfWork, version: Version) -> list[str]:
    """Store, in the writer's unit of work, one rest-hook message per Subscription told of
    this version (a create or an update; a deletion tells nothing): an R4 one whose criteria
    it matches, a topic-based one of the type's `*-changed` topic whose filters it passes,
    either only if the owner may read it; their ids."""
    resource = version.resource
    if resource is None:
        return []
    base = celery_app.configured_settings().base_url
    about = f"{version.resource_type}/{version.id}/_history/{version.version}"
    subject = str(resource.get("subject", {}).get("reference", ""))
    messages = []
    for subscription in await OutboxStore(store).event_subscriptions():
        extra = _told(subscription, resource, base)
        if extra is None:
            continue
        recipient = f"Subscription/{subscription['id']}"
        endpoint = subscription.get("channel", {}).get("endpoint")
        messages.append(
            Message(
                key=f"{about}|{CHANGED}|{RESTHOOK}|{recipient}",
                event=CHANGED,
                channel=RESTHOOK,
                about=about,
                recipient=None,
                subject=subject if subject.startswith("Patient/") else None,
                details={"event": CHANGED, "destination": endpoint, "attempts": 0, **extra},
                subscription=recipient,
            )
        )
    return await store_messages(store, uow, messages, fresh=True)


def _told(
    subscription: dict[str, Any], resource: dict[str, Any], base: str
) -> dict[str, str] | None:
    """The message details a Subscription is told of the change with (None: not told)."""
    if not is_topic_based(subscription):
        return {} if follows(subscription, resource, base) else None
    try:
        topic = topic_of(subscription)
        accepts = compile_filters(subscription, base)
    except TopicError:
        return None  # refused at write; activation puts a stored one in `error`
    rtype = resource.get("resourceType")
    if CHANGED not in topic.events or topic.resource_type != rtype:
        return None
    if not (accepts(resource) and may_see(subscription, resource, base)):
        return None
    return {"topic": topic.url, "focus": f"{rtype}/{resource['id']}"}


def install() -> None:
    """Send the booking engine's events and the followed types' writes to the notifications
    (idempotent)."""
    booking_events.subscribe(record_booking_event)
    for resource_type in FOLLOWED_WRITES:
        write_observers.observe(resource_type, record_change)
