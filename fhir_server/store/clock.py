"""Instants as the store writes them: fixed-width UTC strings.

Fixed width (microseconds, `Z`) makes string order equal time order, which
both MongoDB and the embedded server compare correctly, where the embedded
server mis-orders BSON dates inside sub-documents.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.fhir.search_values import in_utc


def to_instant(moment: datetime) -> str:
    utc = in_utc(moment)  # not strftime: glibc writes year 1 as "1", breaking the fixed width
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


def now_instant() -> str:
    return to_instant(datetime.now(UTC))


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
