"""The booking rules alone: no store, no clock, every role.

The transition table is checked exhaustively (every status to every status,
for each role) against the table written out below, so a change to who may
do what shows up here first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.errors import Conflict, FhirError, Unprocessable
from fhir_server.fhir.instants import fhir_instant
from fhir_server.scheduling import events, rules
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.rules import Caller
from fhir_server.scheduling.settings import BookingSettings

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
STATUSES = (
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
)
# What each status may become, for the clinic (staff and practitioner) ...
CLINIC_MAY = {
    "proposed": "pending booked cancelled entered-in-error",
    "pending": "booked cancelled entered-in-error",
    "booked": "arrived checked-in fulfilled noshow cancelled entered-in-error",
    "arrived": "fulfilled booked entered-in-error",
    "checked-in": "arrived fulfilled booked entered-in-error",
    "fulfilled": "noshow entered-in-error",
    "noshow": "fulfilled entered-in-error",
    "waitlist": "cancelled entered-in-error",
}
# ... and for the patient, who never records (or corrects) what happened on the day.
PATIENT_MAY = {
    "proposed": "pending booked cancelled entered-in-error",
    "pending": "booked cancelled entered-in-error",
    "booked": "cancelled entered-in-error",
    "waitlist": "cancelled entered-in-error",
}
ON_THE_DAY = {"arrived", "checked-in", "fulfilled", "noshow"}
HOLD = {"url": ext.HOLD_EXPIRES, "valueInstant": "2030-01-01T12:10:00Z"}


def appointment(status: str = "booked", start: datetime = NOW, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": "a1",
        "meta": {"versionId": "3"},
        "status": status,
        "start": fhir_instant(start),
        "end": fhir_instant(start + timedelta(minutes=15)),
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
        ],
        **extra,
    }


def slot(start: datetime, status: str = "free") -> dict[str, Any]:
    end = start + timedelta(minutes=15)
    return {"resourceType": "Slot", "status": status, "start": fhir_instant(start),
            "end": fhir_instant(end)}  # fmt: skip


@pytest.mark.parametrize("role", rules.ROLES)
@pytest.mark.parametrize("old", STATUSES)
def test_transition_table_for_every_role(role: str, old: str) -> None:
    caller = Caller(now=NOW, role=role)
    table = PATIENT_MAY if role == "patient" else CLINIC_MAY
    began = appointment(old, start=NOW - timedelta(hours=1))  # so noshow is possible
    for new in STATUSES:
        if new == old or new in table.get(old, "").split():
            rules.check_transition(began, new, caller)
            continue
        allowed_for_clinic = new in CLINIC_MAY.get(old, "").split()
        on_the_day = new in ON_THE_DAY or old in ON_THE_DAY
        expected = Unprocessable if allowed_for_clinic and on_the_day else Conflict
        with pytest.raises(expected):
            rules.check_transition(began, new, caller)


@pytest.mark.parametrize("role", rules.ROLES)
def test_noshow_only_after_the_start(role: str) -> None:
    with pytest.raises(Conflict, match="before it starts"):
        rules.check_transition(
            appointment(start=NOW + timedelta(minutes=1)), "noshow", Caller(NOW, role)
        )


@pytest.mark.parametrize(
    ("role", "side"),
    [
        ("patient", "patient"),
        ("practitioner", "clinic"),
        ("frontdesk", "clinic"),
        ("admin", "clinic"),
    ],
)
def test_the_side_a_cancellation_is_by(role: str, side: str) -> None:
    assert Caller(NOW, role).side == side
    assert Caller(NOW, role).is_patient is (role == "patient")


@pytest.mark.parametrize("role", rules.ROLES)
@pytest.mark.parametrize("status", ["booked", "pending"])
def test_cancellation_cutoff_holds_patients_to_booked_appointments(role: str, status: str) -> None:
    settings = BookingSettings(cancellation_cutoff=timedelta(hours=24))
    close = appointment(status, start=NOW + timedelta(hours=23, minutes=59))
    far = appointment(status, start=NOW + timedelta(hours=24))
    rules.check_cutoff(far, Caller(NOW, role), settings)
    if role == "patient" and status == "booked":
        with pytest.raises(Unprocessable, match="24 hours"):
            rules.check_cutoff(close, Caller(NOW, role), settings)
    else:
        rules.check_cutoff(close, Caller(NOW, role), settings)


def test_bookable_checks_slots_schedule_window_and_type() -> None:
    caller = Caller(NOW, "patient")
    settings = BookingSettings(
        minimum_notice=timedelta(hours=2),
        maximum_days_ahead=7,
        appointment_types=((None, "checkup"),),
    )
    schedule = ("s1", {"resourceType": "Schedule", "active": True})
    soon = [("x", slot(NOW + timedelta(hours=3)))]
    rules.check_bookable({}, soon, schedule, settings, caller)
    Slots = list[tuple[str, dict[str, Any]]]
    Case = tuple[Slots, tuple[str, dict[str, Any]], dict[str, Any], type[FhirError], str]
    surgery = {"appointmentType": {"coding": [{"code": "surgery"}]}}
    cases: list[Case] = [
        ([("x", slot(NOW + timedelta(hours=1)))], schedule, {}, Unprocessable, "120 minutes"),
        ([("x", slot(NOW + timedelta(days=8)))], schedule, {}, Unprocessable, "7 days"),
        ([("x", slot(NOW - timedelta(hours=1)))], schedule, {}, Conflict, "already started"),
        ([("x", slot(NOW + timedelta(hours=3), "busy"))], schedule, {}, Conflict, "already booked"),
        (soon, ("s1", {"active": False}), {}, Conflict, "not active"),
        (soon, schedule, surgery, Unprocessable, "type"),
    ]  # fmt: skip
    for slots, sched, appt, error, words in cases:
        with pytest.raises(error, match=words):
            rules.check_bookable(appt, slots, sched, settings, caller)


def test_times_follow_the_slots() -> None:
    start, end = NOW, NOW + timedelta(minutes=15)
    rules.check_times({}, start, end)
    rules.check_times({"start": "2030-01-01T13:00:00+01:00"}, start, end)  # same moment
    with pytest.raises(Unprocessable, match=r"Appointment\.end"):
        rules.check_times({"end": "2030-01-01T12:30:00Z"}, start, end)
    rules.check_unchanged_times(appointment(), appointment())
    with pytest.raises(Unprocessable, match="reference other Slots"):
        rules.check_unchanged_times(appointment(), appointment(start=NOW + timedelta(hours=1)))


def test_reason_confirmation_and_move() -> None:
    rules.check_reason("entered-in-error", None)
    with pytest.raises(Unprocessable, match="cancelationReason"):
        rules.check_reason("cancelled", None)
    waiting = appointment("pending")
    held = appointment("pending", extension=[HOLD])
    rules.check_confirmable(held, Caller(NOW, "patient"))
    rules.check_confirmable(waiting, Caller(NOW, "frontdesk"))
    rules.check_confirmable(waiting, Caller(NOW, "practitioner"))
    with pytest.raises(Conflict, match="provider's confirmation"):
        rules.check_confirmable(waiting, Caller(NOW, "patient"))
    for status in STATUSES:
        if status in ("booked", "pending", "proposed"):
            rules.check_movable(appointment(status))
        else:
            with pytest.raises(Conflict, match="cannot be moved"):
                rules.check_movable(appointment(status))


def test_participants_decide_and_confirm() -> None:
    def with_statuses(*statuses: str, optional: str = "") -> dict[str, Any]:
        people = [{"status": s, "required": "required"} for s in statuses]
        if optional:
            people.append({"status": optional, "required": "optional"})
        return {"participant": people}

    assert rules.decided(with_statuses("accepted", "accepted", optional="needs-action")) == "booked"
    assert rules.decided(with_statuses("accepted", "declined")) == "cancelled"
    assert rules.decided(with_statuses("accepted", "needs-action")) is None
    assert rules.decided(with_statuses("accepted", optional="declined")) == "booked"
    waiting = [{"actor": {"reference": "Practitioner/d1"}, "status": "needs-action"}]
    must = BookingSettings(provider_must_confirm=True)
    assert rules.confirmed_participants(waiting, must, Caller(NOW, "patient")) == waiting
    for role in ("practitioner", "frontdesk"):
        confirmed = rules.confirmed_participants(waiting, must, Caller(NOW, role))
        assert [p["status"] for p in confirmed] == ["accepted"]
    free = rules.confirmed_participants(waiting, BookingSettings(), Caller(NOW, "patient"))
    assert [p["status"] for p in free] == ["accepted"]


def test_booking_participants_add_the_schedule_and_refuse_strangers() -> None:
    schedule = (
        "s1",
        {"actor": [{"reference": "PractitionerRole/r1"}, {"reference": "Location/l1"}]},
    )
    allowed = {"PractitionerRole/r1", "Practitioner/d1", "Location/l1"}
    asked = {"participant": [{"actor": {"reference": "Patient/p1"}}]}
    booked = rules.booking_participants(asked, schedule, allowed, pending=False)
    assert [(p["actor"]["reference"], p["status"]) for p in booked] == [
        ("Patient/p1", "accepted"),
        ("Location/l1", "accepted"),
        ("PractitionerRole/r1", "accepted"),
    ]
    pending = rules.booking_participants(asked, schedule, allowed, pending=True)
    assert [p["status"] for p in pending] == ["accepted", "accepted", "needs-action"]
    stranger = {"participant": [{"actor": {"reference": "Practitioner/d9"}}]}
    with pytest.raises(Unprocessable, match="does not serve Practitioner/d9"):
        rules.booking_participants(stranger, schedule, allowed, pending=False)


def test_references_and_the_patient() -> None:
    assert rules.slot_ids({"slot": [{"reference": "Slot/a"}, {"reference": "x/Slot/b"}]}) == [
        "a",
        "b",
    ]
    with pytest.raises(Unprocessable, match=r"Appointment\.slot"):
        rules.slot_ids({"slot": [{"reference": "Schedule/a"}]})
    assert rules.patient_of(appointment()) == "Patient/p1"
    with pytest.raises(Unprocessable, match="exactly one Patient"):
        rules.patient_of({"participant": []})


def test_a_hold_lapses_at_its_expiry() -> None:
    held = appointment("pending", extension=[HOLD])
    assert rules.is_hold(held) and not rules.is_hold(appointment("pending"))
    assert not rules.hold_lapsed(held, NOW)
    assert rules.hold_lapsed(held, NOW + timedelta(minutes=10))
    assert not rules.hold_lapsed({**held, "status": "booked"}, NOW + timedelta(hours=1))
    assert not rules.hold_lapsed(appointment("pending"), NOW + timedelta(hours=1))


def _with(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**resource, **changes}


def test_event_of_each_write() -> None:
    booked = appointment()
    pending = _with(booked, status="pending")
    held = _with(pending, extension=[HOLD])
    cancelled = _with(booked, status="cancelled", cancelationReason={"text": "Ill"})

    def kind(before: dict[str, Any] | None, after: dict[str, Any], **kw: Any) -> str | None:
        event = rules.event_of(before, after, cancelled_by="patient", **kw)
        return type(event).__name__ if event else None

    assert kind(None, booked) == "Booked"
    assert kind(None, pending) == "Pending"
    assert kind(None, held) is None  # a hold is not announced
    assert kind(held, booked) == "Booked"
    assert kind(pending, booked) == "Confirmed"
    assert kind(held, _with(held, status="cancelled")) == "HoldExpired"
    declined = _with(pending, status="cancelled", participant=[{"status": "declined"}])
    assert kind(pending, declined) == "Declined"
    assert kind(booked, cancelled) == "Cancelled"
    assert rules.event_of(booked, cancelled, cancelled_by="clinic") == events.Cancelled(
        cancelled, cancelled_by="clinic"
    )
    # The reason's text decides nothing; the engine says when a cancellation is a reschedule's.
    assert kind(booked, _with(cancelled, cancelationReason={"text": "Rescheduled"})) == "Cancelled"
    assert kind(booked, cancelled, superseded=True) is None
    moved = _with(booked, start="2030-01-03T09:00:00Z")
    assert rules.event_of(booked, moved, cancelled_by="patient") == events.Rescheduled(
        moved, previous=booked
    )
    assert kind(None, _with(booked, id="a2"), replaced=booked) == "Rescheduled"
    arrived = _with(booked, status="arrived")
    assert rules.event_of(booked, arrived, cancelled_by="clinic") == events.OutcomeChanged(
        arrived, previous=booked
    )
    assert kind(arrived, _with(booked, status="entered-in-error")) == "OutcomeChanged"
    assert kind(booked, _with(booked, status="entered-in-error")) is None


def test_a_deleted_booking_is_reported_cancelled() -> None:
    event = rules.deleted_event(appointment(), cancelled_by="clinic")
    assert event == events.Cancelled(
        _with(appointment(), status="cancelled"), cancelled_by="clinic", deleted=True
    )
    assert rules.deleted_event(appointment("pending", extension=[HOLD]), cancelled_by="x") is None
    fulfilled = appointment("fulfilled")
    assert rules.deleted_event(fulfilled, cancelled_by="x") == events.OutcomeChanged(
        _with(fulfilled, status="entered-in-error"), previous=fulfilled
    )
