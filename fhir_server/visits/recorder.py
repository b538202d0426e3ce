"""The handler that keeps a visit's Encounter and ChargeItems in step with its Appointment.

It runs inside the unit of work that writes the Appointment's new status
(`scheduling.events.publish`), so the Encounter and charges commit with that
status or not at all: on a replica set in the same transaction, on the embedded
store in the same intent (`store.intents`), which a crash leaves for recovery to
roll forward or back as a whole. A retried request therefore finds either
nothing done or everything done, and a repeated status is no event at all. The
deterministic ids (`records`) make a second create of the same charge a conflict.
`install` subscribes it; every process that changes Appointments calls it at start.
"""

from __future__ import annotations

from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import events
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork
from fhir_server.visits import records
from fhir_server.visits.billing import CHARGES, billing_code


async def record_outcome(store: ResourceStore, uow: UnitOfWork, event: events.BookingEvent) -> None:
    """Write what the Appointment's recorded (or corrected) outcome means for its visit."""
    if not isinstance(event, events.OutcomeChanged):
        return
    appointment = event.appointment
    if not records.actors(appointment, "Patient/"):  # no patient: no visit to record
        return
    status = str(appointment.get("status"))
    service = await _service(store, appointment)
    stored = await store.current("Encounter", records.encounter_id(appointment["id"]), uow)
    wanted = records.ENCOUNTER_STATUS.get(status)
    if wanted is not None:
        earlier = _live(stored)
        kept = earlier if earlier and earlier.get("status") != records.VOID else None
        practitioners = await _practitioners(store, appointment)
        body = records.encounter(appointment, wanted, kept, service, practitioners)
        await _put(store, uow, body, stored)
    else:
        await _void(store, uow, stored)
    for charge in CHARGES:
        cid = records.charge_id(appointment["id"], charge)
        stored = await store.current("ChargeItem", cid, uow)
        code = billing_code(service, charge)
        if status == charge.billed_when and code is not None:
            body = records.charge_item(appointment, charge, code, service)
            await _put(store, uow, body, stored)
        else:
            await _void(store, uow, stored)


async def _service(store: ResourceStore, appointment: Resource) -> Resource | None:
    """The HealthcareService the Appointment is for (its first such participant)."""
    for ref in records.actors(appointment, "HealthcareService/"):
        found = await store.current("HealthcareService", ref.split("/", 1)[1])
        if found is not None and not found.deleted:
            return found.resource
    return None


async def _practitioners(store: ResourceStore, appointment: Resource) -> tuple[str, ...]:
    """The Practitioners of the Appointment's PractitionerRole participants."""
    found = []
    for ref in records.actors(appointment, "PractitionerRole/"):
        role = _live(await store.current("PractitionerRole", ref.split("/", 1)[1]))
        practitioner = (role or {}).get("practitioner", {}).get("reference")
        if practitioner:
            found.append(str(practitioner))
    return tuple(found)


def _live(stored: Version | None) -> Resource | None:
    return stored.resource if stored is not None and not stored.deleted else None


async def _put(
    store: ResourceStore, uow: UnitOfWork, body: Resource, stored: Version | None
) -> None:
    """Write `body` over the version read (a compare-and-set), or create it."""
    await store.update(body, expected_version=stored.version if stored else None, uow=uow)


async def _void(store: ResourceStore, uow: UnitOfWork, stored: Version | None) -> None:
    """Mark a stored Encounter or ChargeItem entered-in-error (a corrected outcome)."""
    live = _live(stored)
    body = records.voided(live) if live is not None else None
    if body is not None:
        await _put(store, uow, body, stored)


def install() -> None:
    """Send the booking engine's events to the visit recorder (idempotent)."""
    events.subscribe(record_outcome)
