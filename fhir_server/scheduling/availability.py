"""Opening hours of a Schedule's actors, expanded to UTC intervals.

Rules (PractitionerRole/HealthcareService `availableTime`, Location
`hoursOfOperation`) are wall-clock times in the Location's IANA zone (the
standard `timezone` extension). Each local day is expanded with `zoneinfo`, so
09:00-17:00 stays 09:00-17:00 local across DST changes even though its UTC
offset moves. A Schedule is open where every actor that states hours is open,
minus each actor's `notAvailable` periods (a Location's `booking-closure`
extensions) and the closed (holiday) days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_server.fhir.errors import Unprocessable
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.intervals import Interval, intersect, merge, subtract

_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Actors:
    """The resources behind a Schedule's actors (any may be missing)."""

    location: Resource | None = None
    practitioner_role: Resource | None = None
    healthcare_service: Resource | None = None


def zone_of(location: Resource | None) -> ZoneInfo:
    """The Location's IANA zone; UTC when it states none."""
    item = ext.first(location, ext.TIMEZONE) if location else None
    if item is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(str(item.get("valueCode")))
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(
            "The Location's timezone extension is not an IANA zone name.",
            expression=("Location.extension",),
        ) from None


def parse_moment(value: str, zone: ZoneInfo, *, end: bool = False) -> datetime:
    """A FHIR date or dateTime as an aware datetime; dates and local times read in `zone`.

    A bare date as the end of a period means the end of that day (periods are inclusive).
    """
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + (_DAY if end else timedelta(0)), time(), zone)
        if len(value) in (4, 7):
            raise ValueError(value)
        moment = parse_instant(value)
    except ValueError:
        raise Unprocessable(
            "A period in the availability rules is not a FHIR date or dateTime."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _clock(value: str | None, fallback: time) -> time:
    if value is None:
        return fallback
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise Unprocessable("An opening time is not a FHIR time (HH:MM:SS).") from None


def local_days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    """Every local calendar day that overlaps [start, end) in `zone`."""
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_span(day: date, zone: ZoneInfo) -> Interval:
    """The local day as a UTC interval (23 or 25 hours long on DST days)."""
    return (
        datetime.combine(day, time(), zone).astimezone(UTC),
        datetime.combine(day + _DAY, time(), zone).astimezone(UTC),
    )


def weekly(
    rules: Iterable[Resource],
    zone: ZoneInfo,
    window: Interval,
    *,
    open_key: str,
    close_key: str,
) -> list[Interval]:
    """Weekly opening rules expanded over the window, as UTC intervals."""
    out: list[Interval] = []
    rules = list(rules)
    for day in local_days(window[0] - _DAY, window[1] + _DAY, zone):
        for rule in rules:
            days = rule.get("daysOfWeek")
            if days and day.weekday() not in {_DAYS.get(d) for d in days}:
                continue
            if rule.get("allDay"):
                out.append(day_span(day, zone))
                continue
            opens = _clock(rule.get(open_key), time())
            closes = _clock(rule.get(close_key), time())
            start = datetime.combine(day, opens, zone)
            end_day = day + _DAY if closes <= opens else day
            end = datetime.combine(end_day, closes, zone)
            out.append((start.astimezone(UTC), end.astimezone(UTC)))
    return intersect(out, [window])


def _closed_periods(resource: Resource) -> list[Resource]:
    """The `during` Periods of `notAvailable`, or of a Location's closure extensions."""
    if resource.get("resourceType") == "Location":
        return [
            part.get("valuePeriod", {})
            for item in ext.values(resource, ext.CLOSURE)
            for part in item.get("extension", [])
            if part.get("url") == "during"
        ]
    return [item.get("during", {}) for item in resource.get("notAvailable", [])]


def unavailable(resource: Resource, zone: ZoneInfo) -> list[Interval]:
    """`notAvailable[].during` periods (a Location's closures) as UTC intervals (open-ended
    ones run for a year)."""
    out: list[Interval] = []
    for during in _closed_periods(resource):
        if "start" not in during and "end" not in during:
            continue
        start = parse_moment(during["start"], zone) if "start" in during else datetime.min
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
        end = (
            parse_moment(during["end"], zone, end=True)
            if "end" in during
            else start + timedelta(days=366)
        )
        out.append((start.astimezone(UTC), end.astimezone(UTC)))
    return merge(out)


def open_intervals(
    actors: Actors, window: Interval, closed_days: Iterable[date] = ()
) -> list[Interval]:
    """Where all actors with stated hours are open within `window` (UTC), minus closures.

    An actor that states no hours does not restrict; when no actor states
    hours at all, nothing is open (a Schedule without rules offers nothing).
    """
    zone = zone_of(actors.location)
    constrained: list[list[Interval]] = []
    closures: list[Interval] = [day_span(day, zone) for day in closed_days]
    for resource, rules_key, open_key, close_key in (
        (actors.location, "hoursOfOperation", "openingTime", "closingTime"),
        (actors.practitioner_role, "availableTime", "availableStartTime", "availableEndTime"),
        (actors.healthcare_service, "availableTime", "availableStartTime", "availableEndTime"),
    ):
        if resource is None:
            continue
        closures += unavailable(resource, zone)
        if resource.get(rules_key):
            rules = resource[rules_key]
            constrained.append(weekly(rules, zone, window, open_key=open_key, close_key=close_key))
    if not constrained:
        return []
    result = constrained[0]
    for other in constrained[1:]:
        result = intersect(result, other)
    return subtract(result, closures)
