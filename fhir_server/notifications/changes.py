"""Which notification event, if any, an Appointment write is.

The booking engine reports every Appointment it writes (before and after);
this module names the event, so the engine states facts and the wording of
notifications stays here:

- new and `booked` -> booked; new and `pending` -> pending (a hold, which
  carries the hold-expiry extension, is not announced);
- a hold that becomes `booked` -> booked; `pending` -> `booked` -> confirmed;
- `cancelled` after a hold -> hold-expired (Subscriptions only); after a
  participant declined -> declined; with reason "Rescheduled" -> nothing (the
  new Appointment announces the move); otherwise -> cancelled;
- a new start time on an active Appointment -> rescheduled;
- a new Appointment that replaces another -> rescheduled;
- an active Appointment deleted -> cancelled (its last content, status cancelled).
"""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import FhirError
from fhir_server.notifications.events import AppointmentEvent, record_event
from fhir_server.scheduling import extensions
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork

HOLD_EXPIRES = extensions.HOLD_EXPIRES
_ACTIVE = ("booked", "pending")


def _held(appointment: dict[str, Any]) -> bool:
    return any(e.get("url") == HOLD_EXPIRES for e in appointment.get("extension", []))


def _declined(appointment: dict[str, Any]) -> bool:
    return any(p.get("status") == "declined" for p in appointment.get("participant", []))


def event_of(
    before: dict[str, Any] | None,
    after: dict[str, Any],
    replaced: dict[str, Any] | None = None,
    cancelled_by: str | None = None,
) -> AppointmentEvent | None:
    status = after.get("status")
    if before is None:
        if replaced is not None and status in _ACTIVE and not _held(after):
            return AppointmentEvent("rescheduled", after, previous=replaced)
        if status in _ACTIVE and not _held(after):
            return AppointmentEvent(str(status), after)
        return None
    old = before.get("status")
    if status == "cancelled" and old != "cancelled":
        if _held(before):
            return AppointmentEvent("hold-expired", after)
        if old == "pending" and _declined(after):
            return AppointmentEvent("declined", after)
        if (after.get("cancelationReason") or {}).get("text") == "Rescheduled":
            return None
        return AppointmentEvent("cancelled", after, cancelled_by=cancelled_by)
    if status == "booked" and old == "pending":
        return AppointmentEvent("booked" if _held(before) else "confirmed", after)
    if status in _ACTIVE and old in _ACTIVE and before.get("start") != after.get("start"):
        return AppointmentEvent("rescheduled", after, previous=before)
    return None


async def appointment_written(
    store: ResourceStore,
    uow: UnitOfWork,
    written: Version,
    *,
    replaced: dict[str, Any] | None = None,
    cancelled_by: str | None = None,
    before: dict[str, Any] | None = None,
) -> list[str]:
    """Record the notifications of an Appointment write in its unit of work.

    `before` is the version it replaced when the caller has it (else it is read).
    """
    if written.resource is None:
        return []
    if before is None and written.version > 1:
        try:
            before = (await store.vread("Appointment", written.id, written.version - 1)).resource
        except FhirError:
            before = None
    event = event_of(before, written.resource, replaced, cancelled_by)
    if event is None:
        return []
    return await record_event(store, uow, event, fresh=True)


async def appointment_deleted(
    store: ResourceStore, uow: UnitOfWork, last: Version, *, cancelled_by: str | None = None
) -> list[str]:
    """A deleted Appointment that was booked or pending is announced as cancelled."""
    body = last.resource
    if body is None or body.get("status") not in _ACTIVE or _held(body):
        return []
    cancelled = {**body, "status": "cancelled"}
    return await record_event(
        store, uow, AppointmentEvent("cancelled", cancelled, cancelled_by=cancelled_by)
    )
