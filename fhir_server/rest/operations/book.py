"""`Appointment/$book` (Argonaut Scheduling, IHE ITI names accepted): book, confirm a hold,
or reschedule in one step with `cancelled-appt-id`.

A retried request with the same `Idempotency-Key` header gets the first result.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fhir_server.fhir.errors import BadRequest, Conflict
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.appointment_io import (
    appointment_bundle,
    appointment_id_input,
    appointment_input,
    referenced_id,
)
from fhir_server.rest.operations.parameters import definition, first, inputs, param
from fhir_server.rest.scheduling_hooks import caller_of, fingerprint
from fhir_server.rest.services import Operation, Services
from fhir_server.scheduling import booking
from fhir_server.scheduling.idempotent import once
from fhir_server.store.resources import Version
from fhir_server.store.unit_of_work import UnitOfWork

DEFINITION = definition(
    "book",
    "Appointment",
    "Argonaut Scheduling $book: books the Slot(s) of a proposed Appointment, or books a held "
    "(pending) Appointment given by appt-id, appointment-reference or by its id. With "
    "cancelled-appt-id "
    "it reschedules: the new Slots are claimed before the old Appointment is cancelled and its "
    "Slots freed, all or nothing. Send an Idempotency-Key header to make retries safe.",
    [
        param("appt-resource", "in", "Appointment", doc="The Appointment to book (Argonaut)."),
        param("appointment-resource", "in", "Appointment", doc="The same (IHE ITI name)."),
        param("appt-id", "in", "uri", doc="A held Appointment: id, reference or URL (Argonaut)."),
        param("appointment-reference", "in", "Reference", doc="A held Appointment (IHE ITI)."),
        param("cancelled-appt-id", "in", "uri", doc="Appointment replaced (reschedule)."),
        param("return", "out", "Bundle", min_=1, doc="Searchset with the booked Appointment."),
    ],
    affects_state=True,
)


async def _book(
    services: Services, req: FhirRequest, found: dict[str, list[Any]], uow: UnitOfWork | None
) -> Version:
    store, caller = services.store, caller_of(req)
    appointment = appointment_input(found, "$book")
    held_id = appointment_id_input(found)
    if held_id is None and appointment is not None and appointment.get("id"):
        existing = await store.current("Appointment", str(appointment["id"]))
        held_id = existing.id if existing and not existing.deleted else None
    replacing = referenced_id(first(found, "cancelled-appt-id"), "cancelled-appt-id")
    if held_id is not None:
        if replacing:
            raise BadRequest("Reschedule with an Appointment resource, not a reference.")
        current = await store.read("Appointment", held_id)
        body = current.resource or {}
        if body.get("status") != "pending":
            raise Conflict(f"Appointment/{held_id} is {body.get('status')}, not a pending hold.")
        return await booking.change(store, current, {**body, "status": "booked"}, caller, uow=uow)
    if appointment is None:
        raise BadRequest("$book needs appt-resource, appointment-resource, appt-id or a reference.")
    return await booking.book(store, appointment, caller, replacing=replacing, uow=uow)


async def handle(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method != "POST":
        raise BadRequest("$book is invoked with POST.")
    found = inputs(req)
    version, _ = await once(
        services.store,
        req.header("idempotency-key"),
        partial(fingerprint, req),
        lambda uow: _book(services, req, found, uow),
    )
    return FhirResponse(200, appointment_bundle(services, version))


OPERATION = Operation(DEFINITION, handle)
