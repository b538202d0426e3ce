"""`Appointment/$hold` (Argonaut Scheduling): hold a proposed Appointment's Slot(s) briefly."""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import BadRequest, Conflict
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.appointment_io import (
    appointment_bundle,
    appointment_id_input,
    appointment_input,
)
from fhir_server.rest.operations.parameters import definition, inputs, param
from fhir_server.rest.scheduling_hooks import caller_of
from fhir_server.rest.services import Operation, Services
from fhir_server.scheduling import booking
from fhir_server.scheduling.extensions import HOLD_EXPIRES

DEFINITION = definition(
    "hold",
    "Appointment",
    "Argonaut Scheduling $hold: claims the Slot(s) of a proposed Appointment tentatively. "
    f"The Appointment comes back pending with its expiry in the extension {HOLD_EXPIRES}; "
    "book it with $book (appointment-reference) before then, or release it early by "
    "cancelling it (PATCH status). Expired holds are released by the server. A stored "
    "proposed Appointment named by appt-id or appointment-reference is held as a new pending "
    "Appointment (the proposal stays as it is).",
    [
        param("appt-resource", "in", "Appointment", doc="The proposed Appointment (Argonaut)."),
        param("appointment-resource", "in", "Appointment", doc="The same (IHE ITI name)."),
        param("appt-id", "in", "uri", doc="A stored proposed Appointment (Argonaut)."),
        param("appointment-reference", "in", "Reference", doc="The same (IHE ITI name)."),
        param("return", "out", "Bundle", min_=1, doc="Searchset with the pending Appointment."),
    ],
    affects_state=True,
)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method != "POST":
        raise BadRequest("$hold is invoked with POST.")
    found = inputs(req)
    appointment = appointment_input(found, "$hold") or await _proposal(services, found)
    version = await booking.book(services.store, appointment, caller_of(req), hold=True)
    return FhirResponse(200, appointment_bundle(services, version))


async def _proposal(services: Services, found: dict[str, list[Any]]) -> dict[str, Any]:
    """The stored proposed Appointment named by appt-id / appointment-reference."""
    proposed_id = appointment_id_input(found)
    if proposed_id is None:
        raise BadRequest(
            "$hold needs an appt-resource (or appointment-resource) Appointment, or the "
            "appt-id (or appointment-reference) of a proposed one."
        )
    body = (await services.store.read("Appointment", proposed_id)).resource or {}
    if body.get("status") != "proposed":
        raise Conflict(f"Appointment/{proposed_id} is {body.get('status')}, not proposed.")
    return body


OPERATION = Operation(DEFINITION, handle)
