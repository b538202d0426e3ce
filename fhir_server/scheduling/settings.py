"""Per-Schedule booking settings, read from the Schedule's extensions.

Each setting is an extension defined in `profiles/` so that clients can read
and write them with plain FHIR; absent extensions fall back to the defaults
below (a 15-minute slot, no buffer, one patient per slot, no confirmation,
10-minute holds, the public holidays of the Location's address).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fhir_server.fhir.errors import Unprocessable
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import extensions as ext

# UCUM codes accepted in a Duration, with their length.
_UNITS = {
    "s": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


@dataclass(frozen=True)
class BookingSettings:
    slot_length: timedelta = timedelta(minutes=15)
    buffer: timedelta = timedelta(0)
    appointment_types: tuple[tuple[str | None, str], ...] = ()  # (system, code)
    minimum_notice: timedelta = timedelta(0)
    maximum_days_ahead: int = 90
    cancellation_cutoff: timedelta = timedelta(0)
    provider_must_confirm: bool = False
    capacity: int = 1
    hold_duration: timedelta = timedelta(minutes=10)
    holiday_calendar: str | None = None  # "CC" or "CC-SUBDIV" or "none"; else the Location's

    def offers(self, appointment_type: dict[str, Any] | None) -> bool:
        """Whether an Appointment.appointmentType is one this Schedule takes (any, if unset)."""
        if not self.appointment_types or appointment_type is None:
            return True
        wanted = {(c.get("system"), c.get("code")) for c in appointment_type.get("coding", [])}
        offered = set(self.appointment_types)
        codes_only = {code for _, code in self.appointment_types}
        return bool(wanted & offered) or any(
            system is None and code in codes_only for system, code in wanted
        )


def duration(value: dict[str, Any], where: str) -> timedelta:
    """A FHIR Duration (UCUM s, min, h, d) as a timedelta."""
    unit = value.get("code") or value.get("unit")
    amount = value.get("value")
    if unit not in _UNITS or not isinstance(amount, int | float) or amount < 0:
        raise Unprocessable(
            "A booking duration needs a non-negative value and a UCUM code s, min, h or d.",
            expression=(where,),
        )
    return _UNITS[str(unit)] * amount


def booking_settings(schedule: Resource) -> BookingSettings:
    """The settings a Schedule carries; raises Unprocessable on a malformed one."""
    found: dict[str, Any] = {}
    for url, name in (
        (ext.SLOT_LENGTH, "slot_length"),
        (ext.BUFFER, "buffer"),
        (ext.MINIMUM_NOTICE, "minimum_notice"),
        (ext.CANCELLATION_CUTOFF, "cancellation_cutoff"),
        (ext.HOLD_DURATION, "hold_duration"),
    ):
        item = ext.first(schedule, url)
        if item is not None:
            found[name] = duration(item.get("valueDuration", {}), f"Schedule.extension('{url}')")
    ahead = ext.first(schedule, ext.MAXIMUM_DAYS_AHEAD)
    if ahead is not None:
        found["maximum_days_ahead"] = int(ahead.get("valuePositiveInt", 90))
    capacity = ext.first(schedule, ext.CAPACITY)
    if capacity is not None:
        found["capacity"] = int(capacity.get("valuePositiveInt", 1))
    confirm = ext.first(schedule, ext.PROVIDER_MUST_CONFIRM)
    if confirm is not None:
        found["provider_must_confirm"] = bool(confirm.get("valueBoolean", False))
    calendar = ext.first(schedule, ext.HOLIDAY_CALENDAR)
    if calendar is not None:
        found["holiday_calendar"] = str(calendar.get("valueString", "")) or None
    types = [
        (coding.get("system"), coding["code"])
        for item in ext.values(schedule, ext.APPOINTMENT_TYPE)
        for coding in item.get("valueCodeableConcept", {}).get("coding", [])
        if "code" in coding
    ]
    found["appointment_types"] = tuple(types)
    settings = BookingSettings(**found)
    if settings.slot_length <= timedelta(0):
        raise Unprocessable("The slot length must be positive.", expression=("Schedule.extension",))
    return settings
