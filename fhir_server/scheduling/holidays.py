"""Public holidays of the Location's country (and subdivision) from the `holidays` package.

The country and subdivision come from the Location's `address.country` and
`address.state`, unless a calendar "CC" or "CC-SUBDIV" is named ("none"
switches holidays off): by the Location's own holiday-calendar extension, or,
overriding it, by the Schedule's holiday-calendar booking setting. An unknown
subdivision falls back to the country's national holidays; an unknown country
has none, so a typo never closes a clinic.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import holidays as holiday_data

from fhir_server.scheduling import extensions as ext


def calendar_of(location: dict[str, Any] | None, override: str | None) -> tuple[str, str | None]:
    """(country, subdivision) to look holidays up for; country "" means none."""
    named = ext.first(location, ext.HOLIDAY_CALENDAR) if location else None
    override = override or (str(named.get("valueString") or "") if named else None)
    if override:
        if override.lower() == "none":
            return "", None
        country, _, subdivision = override.partition("-")
        return country.upper(), subdivision.upper() or None
    address = (location or {}).get("address") or {}
    country = str(address.get("country") or "").strip().upper()
    state = str(address.get("state") or "").strip().upper() or None
    return country, state


def public_holidays(
    country: str, subdivision: str | None, first: date, last: date
) -> dict[date, str]:
    """Public holidays between two dates (inclusive), with their names."""
    if not country:
        return {}
    years = list(range(first.year, last.year + 1))
    try:
        calendar = holiday_data.country_holidays(country, subdiv=subdivision, years=years)
    except NotImplementedError:
        if subdivision is None:
            return {}
        return public_holidays(country, None, first, last)
    return {day: str(name) for day, name in calendar.items() if first <= day <= last}
