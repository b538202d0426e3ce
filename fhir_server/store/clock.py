"""Instants as the store writes them: fixed-width UTC strings.

Fixed width (microseconds, `Z`) makes string order equal time order, which
both MongoDB and the embedded server compare correctly, where the embedded
server mis-orders BSON dates inside sub-documents.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.fhir.instants import in_utc
from fhir_server.fhir.instants import parse_instant as parse_instant


def to_instant(moment: datetime) -> str:
    utc = in_utc(moment)  # not strftime: glibc writes year 1 as "1", breaking the fixed width
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


def now_instant() -> str:
    return to_instant(datetime.now(UTC))
