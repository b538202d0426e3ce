"""Slot generation from open intervals: lengths, buffers, DST days, stable ids, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_server.fhir.errors import Unprocessable
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.availability import Actors, open_intervals
from fhir_server.scheduling.settings import BookingSettings, booking_settings
from fhir_server.scheduling.slots import slot_id, slot_resource, slot_times


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def minutes(n: int) -> dict[str, object]:
    return {"value": n, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}


def test_slots_fill_intervals_with_buffers_and_never_overrun() -> None:
    settings = BookingSettings(slot_length=timedelta(minutes=20), buffer=timedelta(minutes=10))
    spans = slot_times([(utc("2026-01-05T09:00:00"), utc("2026-01-05T10:15:00"))], settings)
    assert [(s.strftime("%H:%M"), e.strftime("%H:%M")) for s, e in spans] == [
        ("09:00", "09:20"),
        ("09:30", "09:50"),
    ]


@pytest.mark.parametrize(
    ("zone", "before", "dst_day"),
    [
        ("America/New_York", "2026-03-07", "2026-03-08"),
        ("America/New_York", "2026-10-31", "2026-11-01"),
        ("Europe/London", "2026-03-28", "2026-03-29"),
        ("Europe/London", "2026-10-24", "2026-10-25"),
    ],
)
def test_same_local_slots_on_dst_days(zone: str, before: str, dst_day: str) -> None:
    from zoneinfo import ZoneInfo

    location = {
        "resourceType": "Location",
        "extension": [{"url": ext.TIMEZONE, "valueCode": zone}],
        "hoursOfOperation": [{"openingTime": "09:00:00", "closingTime": "17:00:00"}],
    }
    settings = BookingSettings(slot_length=timedelta(minutes=30))
    local = ZoneInfo(zone)

    def local_starts(day: str) -> list[str]:
        start = utc(f"{day}T00:00:00")
        spans = slot_times(
            open_intervals(Actors(location=location), (start, start + timedelta(days=1))),
            settings,
        )
        return [s.astimezone(local).strftime("%H:%M") for s, _ in spans]

    assert local_starts(before) == local_starts(dst_day)
    assert len(local_starts(dst_day)) == 16
    assert local_starts(dst_day)[0] == "09:00"


def test_slot_ids_are_stable_and_distinct() -> None:
    span = (utc("2026-01-05T09:00:00"), utc("2026-01-05T09:30:00"))
    assert slot_id("s1", span) == slot_id("s1", span)
    assert slot_id("s1", span) != slot_id("s2", span)
    other = (span[0], span[1] + timedelta(minutes=15))
    assert slot_id("s1", span) != slot_id("s1", other)


def test_slot_resource_carries_schedule_times_and_capacity() -> None:
    schedule = {"resourceType": "Schedule", "id": "s1", "specialty": [{"text": "GP"}]}
    settings = BookingSettings(capacity=4)
    span = (utc("2026-01-05T09:00:00"), utc("2026-01-05T09:30:00"))
    slot = slot_resource(schedule, span, settings)
    assert slot["schedule"] == {"reference": "Schedule/s1"}
    assert (slot["start"], slot["end"]) == ("2026-01-05T09:00:00Z", "2026-01-05T09:30:00Z")
    assert slot["status"] == "free" and slot["specialty"] == [{"text": "GP"}]
    assert slot["extension"] == [{"url": ext.CAPACITY, "valuePositiveInt": 4}]


def test_booking_settings_from_extensions() -> None:
    schedule = {
        "resourceType": "Schedule",
        "extension": [
            {"url": ext.SLOT_LENGTH, "valueDuration": minutes(45)},
            {"url": ext.BUFFER, "valueDuration": minutes(5)},
            {"url": ext.MINIMUM_NOTICE, "valueDuration": {"value": 2, "code": "h"}},
            {"url": ext.MAXIMUM_DAYS_AHEAD, "valuePositiveInt": 30},
            {"url": ext.CANCELLATION_CUTOFF, "valueDuration": {"value": 1, "code": "d"}},
            {"url": ext.PROVIDER_MUST_CONFIRM, "valueBoolean": True},
            {"url": ext.CAPACITY, "valuePositiveInt": 3},
            {
                "url": ext.APPOINTMENT_TYPE,
                "valueCodeableConcept": {"coding": [{"system": "x", "code": "CHECKUP"}]},
            },
        ],
    }
    settings = booking_settings(schedule)
    assert settings.slot_length == timedelta(minutes=45)
    assert settings.buffer == timedelta(minutes=5)
    assert settings.minimum_notice == timedelta(hours=2)
    assert settings.maximum_days_ahead == 30
    assert settings.cancellation_cutoff == timedelta(days=1)
    assert settings.provider_must_confirm and settings.capacity == 3
    assert settings.offers({"coding": [{"system": "x", "code": "CHECKUP"}]})
    assert not settings.offers({"coding": [{"system": "x", "code": "SURGERY"}]})
    assert settings.offers(None)


def test_malformed_durations_are_refused() -> None:
    bad = {
        "resourceType": "Schedule",
        "extension": [{"url": ext.SLOT_LENGTH, "valueDuration": {"value": 10, "code": "wk"}}],
    }
    with pytest.raises(Unprocessable):
        booking_settings(bad)
    zero = {
        "resourceType": "Schedule",
        "extension": [{"url": ext.SLOT_LENGTH, "valueDuration": minutes(0)}],
    }
    with pytest.raises(Unprocessable):
        booking_settings(zero)
