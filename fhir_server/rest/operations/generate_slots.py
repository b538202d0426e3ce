"""`Schedule/[id]/$generate-slots`: create the free Slots of a window from the rules."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.fhir.errors import BadRequest, MethodNotAllowed
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.parameters import definition, first, inputs, moment, param
from fhir_server.rest.services import Operation, Services
from fhir_server.scheduling.generation import generate

DEFINITION = definition(
    "generate-slots",
    "Schedule",
    "Creates the free Slots of the Schedule between start and end from its actors' "
    "availability (Location time zone, holidays, closures) and booking settings. Idempotent: "
    "a rerun creates nothing new. Free Slots that no longer fit are removed; booked ones are "
    "kept and their Appointments flagged (see Appointment/$outside-availability).",
    [
        param("start", "in", "dateTime", min_=1, doc="Start of the window."),
        param("end", "in", "dateTime", min_=1, doc="End of the window."),
        param("created", "out", "integer", min_=1, doc="Slots created."),
        param("kept", "out", "integer", min_=1, doc="Slots that already existed."),
        param("removed", "out", "integer", min_=1, doc="Free Slots removed."),
        param("repaired", "out", "integer", min_=1, doc="Busy Slots without a booking freed."),
        param("flagged", "out", "Reference", max_="*", doc="Appointments now outside hours."),
    ],
    type_level=False,
    instance=True,
    affects_state=True,
)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method not in ("GET", "POST"):
        raise MethodNotAllowed("$generate-slots takes GET or POST.")
    found = inputs(req)
    if first(found, "start") is None or first(found, "end") is None:
        raise BadRequest("$generate-slots needs start and end.", expression=("start", "end"))
    window = (moment(first(found, "start"), "start"), moment(first(found, "end"), "end"))
    report = await generate(services.store, req.path[1], window, datetime.now(UTC))
    parameters = [
        {"name": "created", "valueInteger": report.created},
        {"name": "kept", "valueInteger": report.kept},
        {"name": "removed", "valueInteger": report.removed},
        {"name": "repaired", "valueInteger": report.repaired},
        *(
            {"name": "flagged", "valueReference": {"reference": f"Appointment/{aid}"}}
            for aid in report.flagged
        ),
    ]
    return FhirResponse(200, {"resourceType": "Parameters", "parameter": parameters})


OPERATION = Operation(DEFINITION, handle)
