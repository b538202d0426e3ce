"""FHIR instants: parse, format and compare, one way everywhere.

FHIR writes UTC as a trailing `Z`, which `datetime.fromisoformat` accepts
only from Python 3.11 on and which we normalise to `+00:00` before parsing
so the behaviour does not depend on the interpreter. Two fixed-width output
forms exist because string order must equal time order where instants are
compared as strings (in store queries): seconds for what clients see and
Slots are keyed by, microseconds for what the store stamps.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_instant(value: str) -> datetime:
    """The moment a FHIR instant (or dateTime with an offset) names."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def fhir_instant(moment: datetime) -> str:
    """Fixed-width UTC instant to the second: string order equals time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
