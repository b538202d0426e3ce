"""`Appointment/$find` (Argonaut Scheduling): open times as proposed Appointments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fhir_server.fhir.errors import BadRequest
from fhir_server.rest.bundles_common import bundle
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import (
    definition,
    first,
    inputs,
    moment,
    param,
    strings,
)
from fhir_server.rest.services import Operation, Services
from fhir_server.scheduling.find import FindQuery, find

DEFINITION = definition(
    "find",
    "Appointment",
    "Argonaut Scheduling $find: bookable times between start and end as a searchset Bundle "
    "of proposed Appointments (one per free Slot), to pass to $hold or $book.",
    [
        param("start", "in", "dateTime", min_=1, doc="Earliest start."),
        param("end", "in", "dateTime", min_=1, doc="Latest start."),
        param("practitioner", "in", "string", max_="*", doc="Practitioner id or reference."),
        param("organization", "in", "string", max_="*", doc="Organization id or reference."),
        param("location", "in", "string", max_="*", doc="Location id or reference."),
        param("specialty", "in", "token", max_="*", doc="Specialty [system|]code."),
        param("visit-type", "in", "token", max_="*", doc="Visit (appointment) type."),
        param("patient", "in", "string", doc="Patient to name in the proposals."),
        param("_count", "in", "integer", doc="Most proposals to return (default 100)."),
        param("return", "out", "Bundle", min_=1, doc="Searchset of proposed Appointments."),
    ],
)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    found = inputs(req)
    if first(found, "start") is None or first(found, "end") is None:
        raise BadRequest("$find needs start and end.", expression=("start", "end"))
    count = req.param("_count") or "100"
    if not count.isdigit():
        raise BadRequest("_count must be a whole number.", expression=("_count",))
    patient = strings(found, "patient")
    query = FindQuery(
        start=moment(first(found, "start"), "start"),
        end=moment(first(found, "end"), "end"),
        practitioner=strings(found, "practitioner"),
        location=strings(found, "location"),
        organization=strings(found, "organization"),
        specialty=strings(found, "specialty"),
        visit_type=strings(found, "visit-type"),
        patient=patient[0] if patient else None,
        limit=max(1, min(int(count), services.settings.max_page_size)),
    )
    proposals = await find(services.store, query, datetime.now(UTC))
    entries = [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": a, "search": {"mode": "match"}}
        for a in proposals
    ]
    return FhirResponse(200, bundle("searchset", entries, total=len(entries)))


OPERATION = Operation(DEFINITION, handle)
