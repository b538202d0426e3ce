"""What a calendar feed's event says: the kind of visit, a patient's name only when allowed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar

from fhir_server.publishing.calendar import feed, summary

APPOINTMENT: dict[str, Any] = {
    "resourceType": "Appointment",
    "id": "a1",
    "meta": {"versionId": "3", "lastUpdated": "2030-01-01T10:00:00Z"},
    "status": "booked",
    "serviceType": [{"coding": [{"display": "Physiotherapy"}]}],
    "description": "knee, after surgery",
    "start": "2030-10-27T09:00:00Z",
    "end": "2030-10-27T09:30:00Z",
    "participant": [
        {"actor": {"reference": "Patient/p", "display": "Jane Doe"}},
        {"actor": {"reference": "Practitioner/d", "display": "Dr Who"}},
        {"actor": {"reference": "Location/l", "display": "Main"}},
    ],
}


def test_a_practitioner_s_event_names_the_patient_only_when_the_clinic_allows_it() -> None:
    assert summary(APPOINTMENT, "Practitioner", patient_names=False) == "Physiotherapy"
    assert summary(APPOINTMENT, "Practitioner", patient_names=True) == "Physiotherapy: Jane Doe"
    assert summary(APPOINTMENT, "Patient", patient_names=False) == "Physiotherapy with Dr Who"


def test_times_are_local_on_a_dst_change_day_and_entered_in_error_is_left_out() -> None:
    wrong = {**APPOINTMENT, "id": "a2", "status": "entered-in-error"}
    body = feed(
        [APPOINTMENT, wrong],
        owner_type="Practitioner",
        zones={"Location/l": ZoneInfo("Europe/Paris")},
        fallback=ZoneInfo("UTC"),
        patient_names=False,
        stamp=datetime(2030, 1, 1, tzinfo=UTC),
    )
    [event] = Calendar.from_ical(body).walk("VEVENT")
    # 27 October 2030 is the day Paris goes back to UTC+1: 09:00Z is 10:00 local.
    assert event.decoded("DTSTART") == datetime(
        2030, 10, 27, 10, 0, tzinfo=ZoneInfo("Europe/Paris")
    )
    assert event.decoded("DTSTART").utcoffset().total_seconds() == 3600
    assert int(event["SEQUENCE"]) == 2
    assert b"knee" not in body and b"Jane" not in body
