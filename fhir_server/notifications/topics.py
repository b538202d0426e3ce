"""Topic-based Subscriptions (Subscriptions R5 Backport IG) on this R4 server.

An R4 Subscription is topic-based when its `criteria` is one of the topic
canonicals below; its filters are `_criteria` extensions
(`backport-filter-criteria`, e.g. `Appointment?patient=Patient/123`) and what
a notification carries is the `_payload` extension
(`backport-payload-content`). The topics are data, not resources: each names
the resource type it reports on, the engine events that trigger it and the
filter parameters it accepts, so validation, matching and the
CapabilityStatement all read the same table.

Filters are matched on the resource itself, as R4 criteria are (see
`criteria`): the resource being written is not searchable yet. Whoever
wrote the Subscription must be able to read the topic's focus type, and is
told only of resources they could read (`owners`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from fhir_server.fhir.resource_match import Predicate
from fhir_server.notifications.codes import BASE, CHANGED
from fhir_server.notifications.criteria import CriteriaError, compile_query

_IG: Final = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
FILTER_EXT: Final = f"{_IG}/backport-filter-criteria"
PAYLOAD_EXT: Final = f"{_IG}/backport-payload-content"
TOPIC_CANONICAL_EXT: Final = f"{_IG}/capabilitystatement-subscriptiontopic-canonical"
TOPIC_BASE: Final = f"{BASE}/SubscriptionTopic"
PAYLOAD_CONTENTS: Final = ("empty", "id-only", "full-resource")

_APPOINTMENT_FILTERS = ("patient", "actor", "practitioner", "location")
_ENCOUNTER_FILTERS = ("patient", "subject", "status", "class", "date", "appointment", "location")
_CHARGE_FILTERS = ("patient", "subject", "code", "context", "entered-date", "occurrence")
# Events after which an appointment no longer holds (some of) its slots.
_RELEASING = ("cancelled", "declined", "hold-expired", "rescheduled")


@dataclass(frozen=True)
class Topic:
    url: str
    resource_type: str  # the focus of its notifications
    events: tuple[str, ...]  # AppointmentEvent kinds that trigger it (CHANGED: every write)
    filters: tuple[str, ...]  # the filter parameters it accepts


TOPICS: Final = (
    Topic(
        f"{TOPIC_BASE}/appointment-booked",
        "Appointment",
        ("booked", "confirmed"),
        _APPOINTMENT_FILTERS,
    ),
    Topic(
        f"{TOPIC_BASE}/appointment-cancelled",
        "Appointment",
        ("cancelled", "declined", "hold-expired"),
        _APPOINTMENT_FILTERS,
    ),
    Topic(
        f"{TOPIC_BASE}/appointment-rescheduled",
        "Appointment",
        ("rescheduled",),
        _APPOINTMENT_FILTERS,
    ),
    Topic(f"{TOPIC_BASE}/slot-freed", "Slot", _RELEASING, ("schedule",)),
    # Every version written of a visit's records (`changes.record_change`).
    Topic(
        f"{TOPIC_BASE}/encounter-changed",
        "Encounter",
        (CHANGED,),
        _ENCOUNTER_FILTERS,
    ),
    Topic(
        f"{TOPIC_BASE}/charge-item-changed",
        "ChargeItem",
        (CHANGED,),
        _CHARGE_FILTERS,
    ),
)
_BY_URL: Final = {topic.url: topic for topic in TOPICS}


class TopicError(ValueError):
    """The Subscription names an unknown topic, filter or payload content."""


def is_topic_based(subscription: dict[str, Any]) -> bool:
    """Topic criteria are canonical URLs; R4 criteria are `Type?query` searches."""
    return str(subscription.get("criteria", "")).startswith(("http://", "https://"))


def topic_of(subscription: dict[str, Any]) -> Topic:
    topic = _BY_URL.get(str(subscription.get("criteria", "")))
    if topic is None:
        known = ", ".join(_BY_URL)
        raise TopicError(f"Unknown SubscriptionTopic; this server offers {known}.")
    return topic


def payload_content(subscription: dict[str, Any]) -> str:
    """What notifications carry; `empty` when no payload mime type is asked for."""
    channel = subscription.get("channel", {})
    if not channel.get("payload"):
        return "empty"
    for extension in channel.get("_payload", {}).get("extension", []):
        if extension.get("url") == PAYLOAD_EXT:
            code = str(extension.get("valueCode", ""))
            if code not in PAYLOAD_CONTENTS:
                raise TopicError(f"Payload content must be one of {', '.join(PAYLOAD_CONTENTS)}.")
            return code
    return "id-only"


def _filter_strings(subscription: dict[str, Any]) -> list[str]:
    extensions = subscription.get("_criteria", {}).get("extension", [])
    return [str(e.get("valueString", "")) for e in extensions if e.get("url") == FILTER_EXT]


def compile_filters(subscription: dict[str, Any], base_url: str) -> Predicate:
    """The predicate of the Subscription's filters on a focus resource; raises TopicError."""
    topic = topic_of(subscription)
    tests = []
    for text in _filter_strings(subscription):
        rtype, _, query = text.partition("?")
        if rtype != topic.resource_type or not query:
            raise TopicError(f"A filter of this topic reads `{topic.resource_type}?name=value`.")
        for name, _ in parse_qsl(query, keep_blank_values=True):
            if name not in topic.filters:
                allowed = ", ".join(topic.filters)
                raise TopicError(f"Filter {name!r} is not offered by this topic ({allowed}).")
        try:
            tests.append(compile_query(rtype, query, base_url))
        except CriteriaError as exc:  # a malformed value of an offered parameter
            raise TopicError(str(exc)) from None
    return lambda resource: all(test(resource) for test in tests)


def problem(subscription: dict[str, Any], base_url: str) -> str | None:
    """Why a topic-based Subscription cannot be served (None: it can)."""
    try:
        compile_filters(subscription, base_url)
        payload_content(subscription)
    except TopicError as exc:
        return str(exc)
    return None


def focuses(
    topic: Topic, kind: str, appointment: dict[str, Any], previous: dict[str, Any] | None
) -> list[str]:
    """References of the resources an event reports on for this topic (none: not triggered).

    Slot-freed reports each Slot the appointment gave back: all of a cancelled
    one's, and those a rescheduled one's previous version held and it no longer does.
    """
    if kind not in topic.events:
        return []
    if topic.resource_type == "Appointment":
        return [f"Appointment/{appointment['id']}"]
    kept = [str(s["reference"]) for s in appointment.get("slot", []) if s.get("reference")]
    if kind != "rescheduled":
        return kept
    held = [str(s["reference"]) for s in (previous or {}).get("slot", []) if s.get("reference")]
    return [ref for ref in held if ref not in kept]
