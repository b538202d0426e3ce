"""What the booking pages show, worked out from FHIR resources: pure, no I/O, no clock.

Every time a patient sees is in the clinic's time zone (the IANA name on the
Location or Schedule, extension `TIMEZONE`) and names it, because a patient
travelling or booking for someone elsewhere must not guess. Words shown to
the patient are gettext message ids marked with `N_`; the templates translate
them, so one function serves English and French.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.proposals import proposed_appointment

Resource = dict[str, Any]

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
CUTOFF = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-cancellation-cutoff"
HOLD_EXPIRES = "https://clinic-booking.example.org/fhir/StructureDefinition/booking-hold-expires"

_DURATION_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def N_(message: str) -> str:
    """Mark a message id for extraction; the template translates it."""
    return message


WEEKDAYS = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)
MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)

# FHIR appointmentstatus -> what the patient reads. A hold (pending with an expiry)
# is told apart from a booking the clinic must still confirm.
STATUS_WORDS = {
    "booked": N_("Booked"),
    "pending": N_("Waiting for the clinic to confirm"),
    "cancelled": N_("Cancelled"),
    "fulfilled": N_("Attended"),
    "noshow": N_("Missed"),
    "arrived": N_("Checked in"),
    "checked-in": N_("Checked in"),
    "proposed": N_("Not booked yet"),
    "waitlist": N_("On the waiting list"),
}
HELD_WORDS = N_("Held for you, not booked yet")
CHANGEABLE = ("booked", "pending")
"""Statuses a patient may still reschedule or cancel from the portal."""


def extension_value(resource: Resource | None, url: str) -> Any:
    """The value[x] of the first extension with `url`, or None."""
    for item in (resource or {}).get("extension", []):
        if item.get("url") == url:
            return next((v for k, v in item.items() if k.startswith("value")), None)
    return None


def zone_of(*resources: Resource | None) -> ZoneInfo:
    """The first valid IANA zone named on the resources (Location, Schedule), else UTC."""
    for resource in resources:
        name = extension_value(resource, TIMEZONE)
        if isinstance(name, str):
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The id in a Reference to `resource_type` (`Type/id` or a URL ending so), else None."""
    text = str((reference or {}).get("reference", "")) if isinstance(reference, dict) else ""
    kind, _, rid = text.rpartition("/")
    if rid and (kind == resource_type or kind.endswith(f"/{resource_type}")):
        return rid
    return None


def actor_ids(resource: Resource, resource_type: str) -> list[str]:
    """Ids of a Schedule's actors or an Appointment's participants of one type."""
    refs = list(resource.get("actor", [])) + [
        p.get("actor") for p in resource.get("participant", [])
    ]
    found = (reference_id(ref, resource_type) for ref in refs)
    return list(dict.fromkeys(rid for rid in found if rid))


def actor_display(resource: Resource, resource_type: str) -> str:
    """The display a Schedule or Appointment gives its first actor of that type."""
    refs = list(resource.get("actor", [])) + [
        p.get("actor") for p in resource.get("participant", [])
    ]
    for ref in refs:
        if reference_id(ref, resource_type) and ref.get("display"):
            return str(ref["display"])
    return ""


def name_of(resource: Resource | None) -> str:
    """A directory resource's name: a string `name`, a HumanName's text or its parts."""
    if not resource:
        return ""
    name = resource.get("name")
    if isinstance(name, str):
        return name
    for human in name or []:
        if human.get("text"):
            return str(human["text"])
        parts = [*human.get("prefix", []), *human.get("given", []), human.get("family", "")]
        return " ".join(p for p in parts if p)
    return ""


@dataclass(frozen=True)
class CalendarDay:
    """A day as the patient reads it: weekday and month are message ids to translate."""

    date: date

    @property
    def weekday(self) -> str:
        return WEEKDAYS[self.date.weekday()]

    @property
    def month(self) -> str:
        return MONTHS[self.date.month - 1]

    @property
    def day(self) -> int:
        return self.date.day

    @property
    def year(self) -> int:
        return self.date.year

    @property
    def iso_day(self) -> str:
        return self.date.isoformat()


@dataclass(frozen=True)
class LocalTime(CalendarDay):
    """A moment in the clinic's zone: the day, the clock time and the zone's name."""

    moment: datetime  # aware, in the clinic's zone

    @property
    def clock(self) -> str:
        return f"{self.moment:%H:%M}"

    @property
    def zone(self) -> str:
        return str(self.moment.tzinfo)


def local(instant: str, zone: ZoneInfo) -> LocalTime:
    moment = parse_instant(instant).astimezone(zone)
    return LocalTime(moment.date(), moment)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants a local calendar day starts and ends at (DST days included)."""
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def week_of(day: date) -> list[date]:
    """Monday to Sunday of the week holding `day`."""
    monday = day - timedelta(days=day.weekday())
    return [monday + timedelta(days=n) for n in range(7)]


def parse_day(text: str | None) -> date | None:
    """An ISO calendar day from a query string, or None when absent or malformed."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def count_by_day(slots: Iterable[Resource], zone: ZoneInfo) -> dict[date, int]:
    counts: dict[date, int] = {}
    for slot in slots:
        day = parse_instant(str(slot["start"])).astimezone(zone).date()
        counts[day] = counts.get(day, 0) + 1
    return counts


def duration_of(value: Any) -> timedelta | None:
    """A FHIR Duration with a UCUM unit of s, min, h or d; None otherwise."""
    if not isinstance(value, dict):
        return None
    unit, amount = value.get("code") or value.get("unit"), value.get("value")
    if unit not in _DURATION_UNITS or not isinstance(amount, int | float):
        return None
    return timedelta(seconds=_DURATION_UNITS[str(unit)] * amount)


def too_late_to_change(appointment: Resource, schedule: Resource | None, now: datetime) -> bool:
    """Whether the clinic's cancellation cut-off has passed (the server enforces it too)."""
    cutoff = duration_of(extension_value(schedule, CUTOFF)) or timedelta(0)
    if appointment.get("status") != "booked" or not appointment.get("start"):
        return False
    return parse_instant(str(appointment["start"])) - now < cutoff


def hold_expiry(appointment: Resource) -> str | None:
    value = extension_value(appointment, HOLD_EXPIRES)
    return str(value) if value else None


def status_words(appointment: Resource) -> str:
    status = str(appointment.get("status"))
    if status == "pending" and hold_expiry(appointment):
        return HELD_WORDS
    return STATUS_WORDS.get(status, status)


def proposal(slot: Resource, schedule: Resource, patient_id: str) -> Resource:
    """The proposed Appointment for one free Slot, as `$find` proposes it (Argonaut)."""
    return proposed_appointment(str(slot["id"]), slot, schedule, f"Patient/{patient_id}")


def is_upcoming(appointment: Resource, now: datetime) -> bool:
    """Still ahead and not over: shown under "Upcoming", the rest under "Past"."""
    if appointment.get("status") in ("cancelled", "fulfilled", "noshow", "entered-in-error"):
        return False
    start = appointment.get("start")
    return bool(start) and parse_instant(str(start)) >= now
