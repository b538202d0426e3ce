"""Instants as the store writes them: fixed-width UTC strings.

Fixed width (microseconds, `Z`) makes string order equal time order, which
both MongoDB and the embedded server compare correctly, where the embedded
server mis-orders BSON dates inside sub-documents.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.fhir.instants import parse_instant as parse_instant


def to_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_instant() -> str:
    return to_instant(datetime.now(UTC))
