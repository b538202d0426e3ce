"""The invitation written line by line is, byte for byte, what `new_calendar` and `event_of`
(the `icalendar` component objects a calendar feed uses) write for it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import vCalAddress

from fhir_server.notifications.ical import build_calendar, event_of, new_calendar
from fhir_server.store.clock import parse_instant


def _library(
    method: str, summary: str, location: str | None, end: str | None, stamp: datetime
) -> bytes:
    """The invitation through the library's component objects, as a calendar feed builds them."""
    calendar = new_calendar(method=method)
    event = event_of(
        uid="a1@clinic-booking",
        sequence=3,
        start=parse_instant("2026-12-07T09:00:00Z"),
        end=parse_instant(end) if end else None,
        summary=summary,
        location=location,
        stamp=stamp,
        status="CANCELLED" if method == "CANCEL" else "CONFIRMED",
    )
    event["organizer"] = vCalAddress("mailto:clinic@example.org")
    attendee = vCalAddress("mailto:ann@example.org")
    event.add("attendee", attendee, parameters={"ROLE": "REQ-PARTICIPANT"})
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def _ours(
    method: str, summary: str, location: str | None, end: str | None, stamp: datetime
) -> bytes:
    return build_calendar(
        method=method,
        uid="a1@clinic-booking",
        sequence=3,
        start="2026-12-07T09:00:00Z",
        end=end,
        summary=summary,
        location=location,
        organizer="clinic@example.org",
        attendee="ann@example.org",
        stamp=stamp,
    )


@pytest.mark.parametrize(
    "summary",
    [
        "Your appointment is booked: Monday 7 December 2026, 10:00 (Europe/Paris)",
        "Votre rendez-vous du vendredi 27 novembre 2026 à 09:00 (Europe/Paris) est confirmé",
        "x" * 66,  # the SUMMARY line exactly one octet short of the fold
        "x" * 67,
        "x" * 200,
        "é" * 40,  # two-octet characters across the fold
        "ab" + "😀" * 30,
        "a;b,c\\d\nline\r\nother\rlone \\N kept",
        "x" * 64 + "\\" + "y" * 20,  # an escape at the fold stays on one line
        "x" * 65 + ",",
        "",
    ],
)
@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
def test_calendar_is_written_as_the_library_writes_it(summary: str, method: str) -> None:
    stamp = datetime(2026, 12, 5, 16, 54, 36, 123456, tzinfo=UTC)
    for location, end in ((None, None), ("Clinique Sud, 2e étage", "2026-12-07T09:30:00Z")):
        assert _ours(method, summary, location, end, stamp) == _library(
            method, summary, location, end, stamp
        )


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(), st.text(min_size=1))
def test_any_text_is_written_as_the_library_writes_it(summary: str, location: str) -> None:
    stamp = datetime(2030, 1, 1)  # no zone: a floating time, written without `Z`
    try:
        expected = _library("REQUEST", summary, location, None, stamp)
    except UnicodeEncodeError:  # lone surrogates: neither can write them
        with pytest.raises(UnicodeEncodeError):
            _ours("REQUEST", summary, location, None, stamp)
        return
    assert _ours("REQUEST", summary, location, None, stamp) == expected


def test_an_instant_with_an_offset_is_written_in_utc() -> None:
    ics = build_calendar(
        method="REQUEST",
        uid="a1@clinic-booking",
        sequence=0,
        start="2026-12-07T10:00:00+01:00",
        end="2026-12-07T10:30:00+01:00",
        summary="x",
        location=None,
        organizer="clinic@example.org",
        attendee="ann@example.org",
        stamp=datetime(2026, 12, 5, tzinfo=UTC),
    )
    assert b"\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T093000Z\r\n" in ics
