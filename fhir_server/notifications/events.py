"""The port the scheduling engine calls: an appointment event becomes stored messages.

`record_event` runs inside the caller's unit of work, so the Communications
are written together with the booking or not at all (a transactional
outbox). Reminders are planned later from the Appointment history (see
`reminders`), so a booking writes no reminder bookkeeping of its own.
Each message is keyed by (appointment, event, version, channel, recipient);
its Communication id is derived from that key, so recording the same event
twice stores nothing new. After the unit of work commits, the new messages
are published to the broker from a background thread (the booking does not
wait for it); if that fails, the relay job publishes them later.

A topic-based Subscription (see `topics`) gets one message per focus the
event reports on; each new one takes the Subscription's next event number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_server.fhir.errors import FhirError
from fhir_server.notifications import celery_app
from fhir_server.notifications.codes import EVENTS, RESTHOOK
from fhir_server.notifications.criteria import matches
from fhir_server.notifications.display import display_name
from fhir_server.notifications.message import Message
from fhir_server.notifications.owners import may_see
from fhir_server.notifications.preferences import email_of, mobile_of, read_preferences
from fhir_server.notifications.topics import (
    TopicError,
    compile_filters,
    focuses,
    is_topic_based,
    topic_of,
)
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.clock import to_instant
from fhir_server.store.outbox_store import OutboxStore
from fhir_server.store.resources import ResourceStore
from fhir_server.store.subscription_events import next_number
from fhir_server.store.unit_of_work import UnitOfWork

_PROVIDER_TYPES = ("Practitioner", "PractitionerRole")


@dataclass(frozen=True)
class AppointmentEvent:
    """Something that happened to an appointment, as the scheduling engine reports it.

    `appointment` is the version just written (with `id` and `meta.versionId`);
    for `rescheduled`, `previous` is the version (or the cancelled appointment)
    it replaced; `cancelled_by` is `patient` or `clinic`; `offset_minutes` is
    set for `reminder`.
    """

    kind: str
    appointment: dict[str, Any]
    previous: dict[str, Any] | None = None
    cancelled_by: str | None = None
    offset_minutes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENTS:
            raise ValueError(f"Unknown appointment event {self.kind!r}; expected one of {EVENTS}.")


async def record_event(
    store: ResourceStore,
    uow: UnitOfWork,
    event: AppointmentEvent,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    fresh: bool = False,
) -> list[str]:
    """Store the event's messages in `uow` and enqueue them after commit; their ids.

    `fresh`: the appointment version was written in this unit of work, so no
    message keyed by it can be stored yet and the lookup of known ids is skipped.
    """
    settings = settings or celery_app.configured_settings()
    outbox = OutboxStore(store)
    messages = await _messages(store, outbox, event, settings)
    return await store_messages(store, uow, messages, fresh=fresh, now=now)


async def store_messages(
    store: ResourceStore,
    uow: UnitOfWork,
    messages: list[Message],
    *,
    fresh: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """Store the messages not stored yet in `uow` and enqueue them after commit; all their ids.

    `fresh`: what they are about was written in this unit of work, so none of them
    can be stored yet and the lookup of known ids is skipped.
    """
    ids = [m.id for m in messages]
    known = await OutboxStore(store).existing("Communication", ids) if ids and not fresh else set()
    new_ids: list[str] = []
    for message in messages:
        if message.id not in known:
            if message.details.get("topic"):
                sid = str(message.subscription).partition("/")[2]
                message.details["eventNumber"] = await next_number(store, sid, uow)
                message.details["occurred"] = to_instant(now or datetime.now(UTC))
            await store.create(message.to_communication(), rid=message.id, uow=uow)
            new_ids.append(message.id)
    if new_ids:

        async def publish() -> None:
            celery_app.enqueue_soon(new_ids)

        uow.after_commit.append(publish)
    return ids


def _event_code(event: AppointmentEvent) -> str:
    return f"reminder-{event.offset_minutes}" if event.kind == "reminder" else event.kind


async def _messages(
    store: ResourceStore, outbox: OutboxStore, event: AppointmentEvent, settings: Settings
) -> list[Message]:
    appointment = event.appointment
    version = appointment.get("meta", {}).get("versionId", "1")
    appointment_ref = _versioned(appointment)
    assert appointment_ref is not None
    actors = [p.get("actor", {}).get("reference", "") for p in appointment.get("participant", [])]
    patient = next((a for a in actors if a.startswith("Patient/")), None)
    details = {
        "event": event.kind,
        "previousStart": (event.previous or {}).get("start"),
        "replaces": _versioned(event.previous),
        "cancelledBy": event.cancelled_by,
        "offset": event.offset_minutes,
        "attempts": 0,
    }

    def message(channel: str, recipient: str, **extra: Any) -> Message:
        key = f"{appointment['id']}|{_event_code(event)}|{version}|{channel}|{recipient}"
        if str(extra.get("focus", "")).startswith("Slot/"):
            key = f"{key}|{extra['focus']}"  # one message per Slot an appointment gives back
        return Message(
            key=key,
            event=event.kind,
            channel=channel,
            about=appointment_ref,
            recipient=None if channel == RESTHOOK else recipient,
            subject=patient,
            details={**details, **extra},
            subscription=recipient if channel == RESTHOOK else None,
        )

    out: list[Message] = []
    if event.kind != "hold-expired":
        for actor in actors:
            person = await _person(store, actor)
            if person is None:
                continue
            role = "patient" if actor.startswith("Patient/") else "provider"
            prefs = read_preferences(person)
            if prefs.opted_out or (
                event.kind == "reminder" and not prefs.wants_reminder(event.offset_minutes)
            ):
                continue
            language = prefs.language or settings.notify_language
            for channel in prefs.channels:
                destination = _destination(person, channel, actor)
                if destination:
                    out.append(
                        message(
                            channel,
                            actor,
                            role=role,
                            recipientName=display_name(person),
                            destination=destination,
                            language=language,
                        )
                    )
    base = settings.base_url
    for subscription in await outbox.event_subscriptions():
        recipient = f"Subscription/{subscription['id']}"
        endpoint = subscription.get("channel", {}).get("endpoint")
        if is_topic_based(subscription):
            for topic, focus in await _topic_focuses(store, subscription, event, base):
                out.append(
                    message(RESTHOOK, recipient, destination=endpoint, topic=topic, focus=focus)
                )
        elif follows(subscription, appointment, base):
            out.append(message(RESTHOOK, recipient, destination=endpoint))
    return out


def follows(subscription: dict[str, Any], resource: dict[str, Any], base_url: str) -> bool:
    """Whether an R4 (criteria) Subscription is told of this version of the resource: it
    matches the criteria and the Subscription's owner may read it (`owners`)."""
    return matches(subscription.get("criteria", ""), resource, base_url) and may_see(
        subscription, resource, base_url
    )


async def _topic_focuses(
    store: ResourceStore, subscription: dict[str, Any], event: AppointmentEvent, base_url: str
) -> list[tuple[str, str]]:
    """(topic, focus reference) of each notification the event gives a topic-based Subscription."""
    try:
        topic = topic_of(subscription)
        accepts = compile_filters(subscription, base_url)
    except TopicError:
        return []  # refused at write; activation puts a stored one in `error`
    out = []
    for focus in focuses(topic, event.kind, event.appointment, event.previous):
        resource = event.appointment if focus.startswith("Appointment/") else None
        if resource is None:
            rtype, _, rid = focus.partition("/")
            try:
                resource = (await store.read(rtype, rid)).resource
            except FhirError:
                continue
        if resource is not None and accepts(resource) and may_see(subscription, resource, base_url):
            out.append((topic.url, focus))
    return out


def _versioned(appointment: dict[str, Any] | None) -> str | None:
    if not appointment:
        return None
    version = appointment.get("meta", {}).get("versionId", "1")
    return f"Appointment/{appointment['id']}/_history/{version}"


def _destination(person: dict[str, Any], channel: str, actor: str) -> str | None:
    if channel == "email":
        return email_of(person)
    if channel == "sms":
        return mobile_of(person)
    return actor  # push: the person's registered browsers, looked up at send time


async def _person(store: ResourceStore, reference: str) -> dict[str, Any] | None:
    """The participant's resource with telecom (a PractitionerRole without: its Practitioner)."""
    rtype, _, rid = reference.partition("/")
    if (rtype != "Patient" and rtype not in _PROVIDER_TYPES) or not rid:
        return None
    try:
        found = (await store.read(rtype, rid)).resource
    except FhirError:
        return None
    if found is None:
        return None
    if rtype == "PractitionerRole" and not found.get("telecom"):
        practitioner = found.get("practitioner", {}).get("reference", "")
        fallback = await _person(store, practitioner) if practitioner else None
        if fallback:
            return {**fallback, "extension": found.get("extension", fallback.get("extension", []))}
    if rtype != "Patient" and email_of(found) is None:
        return await _with_account_email(store, reference, found)
    return found


async def _with_account_email(
    store: ResourceStore, reference: str, provider: dict[str, Any]
) -> dict[str, Any]:
    """A provider with no e-mail in telecom is reached at their user account's address."""
    email = await AuthStore(store.database).email_for_fhir_user(reference)
    if email is None:
        return provider
    telecom = [*provider.get("telecom", []), {"system": "email", "value": email}]
    return {**provider, "telecom": telecom}
