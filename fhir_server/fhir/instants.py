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


def in_utc(moment: datetime) -> datetime:
    """`moment` in UTC. A valid FHIR time within hours of the ends of years 1-9999
    (`0001-01-01T00:00:00+14:00`) has no UTC form in Python; it is held at that end,
    which is what a search or `_since` there means ("from the start", "until the end")."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if moment.year < 5000 else datetime.max
        return edge.replace(tzinfo=UTC)


def parse_instant(value: str) -> datetime:
    """The moment a FHIR instant (or dateTime with an offset) names."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def fhir_instant(moment: datetime) -> str:
    """Fixed-width UTC instant to the second: string order equals time order."""
    utc = in_utc(moment)  # not strftime: glibc writes year 1 as "1", breaking the fixed width
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"
