"""FHIR instants: parsed and formatted one way everywhere.

FHIR writes UTC as a trailing `Z`, which `datetime.fromisoformat` accepts
only from Python 3.11 on; it is normalised to `+00:00` before parsing so
the result does not depend on the interpreter. Parsed instants compare as
aware datetimes. The output form is fixed-width UTC, because string order
must equal time order where instants are compared as strings (in store
queries); the store's own microsecond stamps are `store.clock.to_instant`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_instant(value: str) -> datetime:
    """The moment a FHIR instant (or dateTime with an offset) names."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def fhir_instant(moment: datetime) -> str:
    """Fixed-width UTC instant to the second: string order equals time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
