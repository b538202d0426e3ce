"""Availability rules expanded to UTC: DST days, intersections, closures, holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.errors import Unprocessable
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.availability import Actors, day_span, open_intervals, zone_of
from fhir_server.scheduling.holidays import calendar_of, public_holidays
from fhir_server.scheduling.intervals import intersect, merge, subtract

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def location(zone: str, hours: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "extension": [{"url": ext.TIMEZONE, "valueCode": zone}],
        "hoursOfOperation": hours
        if hours is not None
        else [{"daysOfWeek": EVERY_DAY, "openingTime": "09:00:00", "closingTime": "17:00:00"}],
        **extra,
    }


def window(first: str, last: str) -> tuple[datetime, datetime]:
    return utc(f"{first}T00:00:00"), utc(f"{last}T00:00:00")


@pytest.mark.parametrize(
    ("zone", "days", "expected"),
    [
        # America/New_York springs forward on Sunday 2026-03-08 (EST -5 -> EDT -4).
        (
            "America/New_York",
            ("2026-03-07", "2026-03-10"),
            [("03-07", 14, 22), ("03-08", 13, 21), ("03-09", 13, 21)],
        ),
        # ... and falls back on Sunday 2026-11-01 (EDT -4 -> EST -5).
        (
            "America/New_York",
            ("2026-10-31", "2026-11-03"),
            [("10-31", 13, 21), ("11-01", 14, 22), ("11-02", 14, 22)],
        ),
        # Europe/London springs forward on 2026-03-29 (GMT -> BST +1) ...
        (
            "Europe/London",
            ("2026-03-28", "2026-03-31"),
            [("03-28", 9, 17), ("03-29", 8, 16), ("03-30", 8, 16)],
        ),
        # ... and falls back on 2026-10-25.
        (
            "Europe/London",
            ("2026-10-24", "2026-10-27"),
            [("10-24", 8, 16), ("10-25", 9, 17), ("10-26", 9, 17)],
        ),
    ],
)
def test_nine_to_five_local_across_dst(
    zone: str, days: tuple[str, str], expected: list[tuple[str, int, int]]
) -> None:
    result = open_intervals(Actors(location=location(zone)), window(*days))
    assert result == [
        (utc(f"2026-{day}T{start:02d}:00:00"), utc(f"2026-{day}T{end:02d}:00:00"))
        for day, start, end in expected
    ]
    for start, end in result:
        assert end - start == timedelta(hours=8)


def test_all_day_rules_follow_the_short_and_long_days() -> None:
    all_day = location("America/New_York", [{"daysOfWeek": EVERY_DAY, "allDay": True}])
    spring = open_intervals(Actors(location=all_day), window("2026-03-08", "2026-03-09"))
    assert spring == [(utc("2026-03-08T00:00:00"), utc("2026-03-09T00:00:00"))]
    sunday = open_intervals(
        Actors(location=location("America/New_York", [{"daysOfWeek": ["sun"], "allDay": True}])),
        window("2026-03-07", "2026-03-10"),
    )
    assert sunday == [(utc("2026-03-08T05:00:00"), utc("2026-03-09T04:00:00"))]
    day = day_span(date(2026, 3, 8), zone_of(all_day))
    assert day[1] - day[0] == timedelta(hours=23)
    fall = day_span(date(2026, 11, 1), zone_of(all_day))
    assert fall[1] - fall[0] == timedelta(hours=25)


def test_rule_through_the_missing_hour_is_an_hour_shorter() -> None:
    night = location(
        "America/New_York",
        [{"daysOfWeek": ["sun"], "openingTime": "00:00:00", "closingTime": "05:00:00"}],
    )
    result = open_intervals(Actors(location=night), window("2026-03-08", "2026-03-09"))
    assert result == [(utc("2026-03-08T05:00:00"), utc("2026-03-08T09:00:00"))]


def test_all_actors_must_be_available() -> None:
    clinic = location(
        "UTC",
        [
            {
                "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                "openingTime": "08:00:00",
                "closingTime": "18:00:00",
            }
        ],
    )
    role = {
        "resourceType": "PractitionerRole",
        "availableTime": [
            {
                "daysOfWeek": ["mon"],
                "availableStartTime": "07:00:00",
                "availableEndTime": "12:00:00",
            },
            {
                "daysOfWeek": ["mon"],
                "availableStartTime": "13:00:00",
                "availableEndTime": "17:00:00",
            },
        ],
    }
    service = {
        "resourceType": "HealthcareService",
        "availableTime": [
            {
                "daysOfWeek": ["mon", "tue"],
                "availableStartTime": "10:00:00",
                "availableEndTime": "16:00:00",
            }
        ],
    }
    # 2026-06-08 is a Monday; Tuesday is closed for the role (no rule).
    result = open_intervals(
        Actors(location=clinic, practitioner_role=role, healthcare_service=service),
        window("2026-06-08", "2026-06-10"),
    )
    assert result == [
        (utc("2026-06-08T10:00:00"), utc("2026-06-08T12:00:00")),
        (utc("2026-06-08T13:00:00"), utc("2026-06-08T16:00:00")),
    ]


def test_staff_closures_remove_days_and_hours() -> None:
    role = {
        "resourceType": "PractitionerRole",
        "availableTime": [
            {
                "daysOfWeek": EVERY_DAY,
                "availableStartTime": "09:00:00",
                "availableEndTime": "17:00:00",
            }
        ],
        # on leave for a whole (local) day, given as a date
        "notAvailable": [
            {"description": "Leave", "during": {"start": "2026-06-10", "end": "2026-06-10"}}
        ],
    }
    service = {
        "resourceType": "HealthcareService",
        # the clinic closes early one afternoon, given in local time with its offset
        "notAvailable": [
            {
                "description": "Training",
                "during": {
                    "start": "2026-06-11T13:00:00+01:00",
                    "end": "2026-06-11T23:00:00+01:00",
                },
            }
        ],
    }
    actors = Actors(
        location=location("Europe/London"), practitioner_role=role, healthcare_service=service
    )
    result = open_intervals(actors, window("2026-06-09", "2026-06-12"))
    assert result == [
        (utc("2026-06-09T08:00:00"), utc("2026-06-09T16:00:00")),
        (utc("2026-06-11T08:00:00"), utc("2026-06-11T12:00:00")),
    ]


def test_public_holiday_of_the_locations_country_is_closed() -> None:
    clinic = location("Europe/London", address={"country": "GB", "state": "ENG"})
    country, subdivision = calendar_of(clinic, None)
    assert (country, subdivision) == ("GB", "ENG")
    holidays = public_holidays(country, subdivision, date(2026, 5, 1), date(2026, 5, 31))
    assert date(2026, 5, 4) in holidays  # Early May bank holiday
    result = open_intervals(Actors(location=clinic), window("2026-05-04", "2026-05-06"), holidays)
    assert result == [(utc("2026-05-05T08:00:00"), utc("2026-05-05T16:00:00"))]


def test_holiday_calendar_override_and_unknown_places() -> None:
    clinic = location("America/New_York", address={"country": "US", "state": "NY"})
    assert calendar_of(clinic, "none") == ("", None)
    assert calendar_of(clinic, "de-by") == ("DE", "BY")
    us = public_holidays("US", "NY", date(2026, 11, 1), date(2026, 11, 30))
    assert date(2026, 11, 26) in us  # Thanksgiving
    assert public_holidays("ZZ", None, date(2026, 1, 1), date(2026, 12, 31)) == {}
    national = public_holidays("GB", "NOWHERE", date(2026, 12, 24), date(2026, 12, 26))
    assert date(2026, 12, 25) in national


def test_a_locations_own_calendar_and_closures_close_it() -> None:
    clinic = location(
        "Europe/London",
        address={"country": "US", "state": "NY"},
        extension=[
            {"url": ext.TIMEZONE, "valueCode": "Europe/London"},
            {"url": ext.HOLIDAY_CALENDAR, "valueString": "GB-ENG"},
            {
                "url": ext.CLOSURE,
                "extension": [
                    {"url": "during", "valuePeriod": {"start": "2026-06-10", "end": "2026-06-10"}},
                    {"url": "description", "valueString": "Flood"},
                ],
            },
        ],
    )
    assert calendar_of(clinic, None) == ("GB", "ENG")  # its own calendar, not its address's
    assert calendar_of(clinic, "none") == ("", None)  # a Schedule's setting overrides it
    result = open_intervals(Actors(location=clinic), window("2026-06-09", "2026-06-12"))
    assert result == [
        (utc("2026-06-09T08:00:00"), utc("2026-06-09T16:00:00")),
        (utc("2026-06-11T08:00:00"), utc("2026-06-11T16:00:00")),
    ]


def test_no_stated_hours_means_nothing_is_open() -> None:
    bare = {"resourceType": "Location", "name": "No hours"}
    assert open_intervals(Actors(location=bare), window("2026-06-01", "2026-06-08")) == []


def test_bad_zone_is_refused() -> None:
    with pytest.raises(Unprocessable):
        zone_of(location("Mars/Olympus_Mons"))


def test_interval_algebra() -> None:
    a = [(utc("2026-01-01T09:00:00"), utc("2026-01-01T12:00:00"))]
    b = [(utc("2026-01-01T10:00:00"), utc("2026-01-01T11:00:00"))]
    assert subtract(a, b) == [
        (utc("2026-01-01T09:00:00"), utc("2026-01-01T10:00:00")),
        (utc("2026-01-01T11:00:00"), utc("2026-01-01T12:00:00")),
    ]
    assert intersect(a, b) == b
    assert merge([*a, *b]) == a
