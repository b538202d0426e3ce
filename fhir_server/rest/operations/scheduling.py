"""The scheduling operations, registered together by the composition root."""

from __future__ import annotations

from fhir_server.rest.operations import book, find, generate_slots, hold, outside_availability
from fhir_server.rest.services import Operation

SCHEDULING_OPERATIONS: list[Operation] = [
    generate_slots.OPERATION,
    find.OPERATION,
    hold.OPERATION,
    book.OPERATION,
    outside_availability.OPERATION,
]
