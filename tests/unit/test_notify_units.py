"""Pure parts of the notifications: criteria, preferences, event mapping, backoff, calendar."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from fhir_server.fhir.validation import validate_resource
from fhir_server.notifications.changes import notification_of
from fhir_server.notifications.criteria import CriteriaError, compile_criteria, matches
from fhir_server.notifications.delivery import backoff
from fhir_server.notifications.ical import build_calendar, sequence_of, uid_of
from fhir_server.notifications.message import Message, details_of, with_details
from fhir_server.notifications.preferences import preferences_extension, read_preferences
from fhir_server.scheduling import events as booking_events
from fhir_server.settings import Settings

BASE = "https://clinic.example/fhir"
APPT: dict[str, Any] = {
    "resourceType": "Appointment",
    "id": "a1",
    "meta": {"versionId": "3"},
    "status": "booked",
    "start": "2030-01-02T09:00:00Z",
    "participant": [
        {"actor": {"reference": "Patient/p1"}},
        {"actor": {"reference": "Practitioner/d1"}},
        {"actor": {"reference": "Location/l1"}},
    ],
}


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("Appointment?actor=Practitioner/d1", True),
        ("Appointment?actor=Practitioner/d2", False),
        ("Appointment?practitioner=d1", True),
        ("Appointment?patient=Patient/p1&status=booked", True),
        ("Appointment?patient=p1&status=cancelled,noshow", False),
        ("Appointment?location=l1,l2", True),
        ("Appointment", True),
        ("Appointment?date=ge2030-01-02&date=lt2030-01-03", True),
        ("Appointment?date=2030-01-03", False),
        ("Appointment?status:not=booked", False),
        ("Appointment?patient.name=x", False),  # a chain needs a query: never matches
    ],
)
def test_criteria_match_on_the_resource(criteria: str, expected: bool) -> None:
    assert matches(criteria, APPT, BASE) is expected


def test_unsupported_criteria_are_refused_with_the_parameter_named() -> None:
    with pytest.raises(CriteriaError, match="colour"):
        compile_criteria("Appointment?colour=x", BASE)
    with pytest.raises(CriteriaError, match="needs a query"):
        compile_criteria("Appointment?patient.name=x", BASE)
    with pytest.raises(CriteriaError, match="_count"):
        compile_criteria("Encounter?_count=5", BASE)
    with pytest.raises(CriteriaError, match="date"):
        compile_criteria("ChargeItem?entered-date=yesterday", BASE)
    with pytest.raises(CriteriaError, match="name one of Appointment, Encounter, ChargeItem"):
        compile_criteria("Patient?name=x", BASE)


def test_preferences_default_order_optout_and_language() -> None:
    person = {
        "resourceType": "Patient",
        "telecom": [{"system": "phone", "use": "mobile", "value": "+1555"}],
        "communication": [
            {"language": {"coding": [{"code": "de"}]}},
            {"language": {"coding": [{"code": "fr-BE"}]}, "preferred": True},
        ],
    }
    assert read_preferences(person).channels == ("sms",)  # no e-mail: mobile
    assert read_preferences(person).language == "fr"
    chosen = {**person, "extension": [preferences_extension(["push", "sms", "fax"])]}
    assert read_preferences(chosen).channels == ("push", "sms")  # unknown channels dropped
    out = {**person, "extension": [preferences_extension([], opted_out=True)]}
    assert read_preferences(out).opted_out
    practitioner = {"resourceType": "Practitioner", "communication": [{"coding": [{"code": "en"}]}]}
    assert read_preferences(practitioner).language == "en"
    assert read_preferences(practitioner).channels == ()


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (booking_events.Booked(APPT), "booked"),
        (booking_events.Pending(APPT), "pending"),
        (booking_events.Confirmed(APPT), "confirmed"),
        (booking_events.Declined(APPT), "declined"),
        (booking_events.HoldExpired(APPT), "hold-expired"),
        (booking_events.Cancelled(APPT, cancelled_by="clinic"), "cancelled"),
        (booking_events.Rescheduled(APPT, previous={**APPT, "id": "a0"}), "rescheduled"),
    ],
)
def test_each_booking_event_is_announced_as_its_notification_event(
    event: booking_events.BookingEvent, kind: str
) -> None:
    notification = notification_of(event)
    assert (notification.kind, notification.appointment) == (kind, APPT)
    assert notification.cancelled_by == ("clinic" if kind == "cancelled" else None)
    assert notification.previous == ({**APPT, "id": "a0"} if kind == "rescheduled" else None)


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    settings = Settings(notify_retry_base=2.0, notify_retry_max=60.0)
    for attempt, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        waits = {backoff(settings, attempt) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered


def test_calendar_uid_and_sequence_follow_the_appointment() -> None:
    moved = {**APPT, "id": "a2", "meta": {"versionId": "1"}}
    assert uid_of(APPT, None) == uid_of(moved, APPT) == "a1@clinic-booking"
    assert sequence_of(moved, APPT) > sequence_of(APPT, None)
    ics = build_calendar(
        method="CANCEL",
        uid="a1@clinic-booking",
        sequence=4,
        start=APPT["start"],
        end=None,
        summary="x",
        location=None,
        organizer="clinic@example.org",
        attendee="p@example.org",
        stamp=datetime(2030, 1, 1),
    )
    assert b"METHOD:CANCEL" in ics and b"STATUS:CANCELLED" in ics and b"SEQUENCE:4" in ics


def test_stored_communication_is_valid_r4_and_keeps_its_details() -> None:
    message = Message(
        key="a1|booked|3|email|Patient/p1",
        event="booked",
        channel="email",
        about="Appointment/a1/_history/3",
        recipient="Patient/p1",
        subject="Patient/p1",
        details={"event": "booked", "role": "patient", "destination": "p@x.org", "attempts": 0},
    )
    communication = message.to_communication()
    validate_resource(communication)
    settled = {
        **with_details(communication, attempts=2, nextAttempt=None),
        "status": "not-done",
        "statusReason": {"text": "The mail server refused the recipient address."},
    }
    validate_resource(settled)
    assert details_of(settled)["attempts"] == 2
    assert "nextAttempt" not in details_of(settled)
