"""Appointment and AppointmentResponse writes routed through the booking engine.

A plain `POST Appointment` that references Slots books them; a booked Slot
cannot be edited directly; a `PUT`/`PATCH`
of a booked Appointment is a state transition (cancel, confirm, check-in,
reschedule), one of an Appointment without Slots is written as given (its recorded
outcome still reported); a `POST AppointmentResponse` accepts or declines for its actor;
deleting an Appointment frees its Slots, and a Slot with bookings cannot be deleted.
The caller's role (patient, practitioner, frontdesk or admin, `auth.roles`)
comes from the access token when auth is on; with auth off (local tests, demos) it is read from the
`X-Actor-Role` header, default patient.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import partial

import orjson

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.roles import booking_role
from fhir_server.fhir.errors import BadRequest
from fhir_server.rest.messages import FhirRequest
from fhir_server.rest.services import DeleteContext, DeleteHook, WriteContext, WriteHook
from fhir_server.scheduling import booking, rules
from fhir_server.scheduling.idempotent import once
from fhir_server.store.resources import Version

ROLE_HEADER = "x-actor-role"


def fingerprint(req: FhirRequest) -> str:
    """What makes two requests the same request, for Idempotency-Key reuse checks."""
    body = orjson.dumps(req.body, option=orjson.OPT_SORT_KEYS)
    target = f"{req.method} {'/'.join(req.path)}\n".encode()
    return hashlib.sha256(target + body).hexdigest()


def caller_of(req: FhirRequest) -> rules.Caller:
    """The caller's role: from the access token when auth is on, else from X-Actor-Role."""
    now = datetime.now(UTC)
    if isinstance(req.auth, TokenContext):
        return rules.Caller(now=now, role=booking_role(req.auth))
    role = (req.header(ROLE_HEADER) or "patient").strip().lower()
    if role not in rules.ROLES:
        raise BadRequest(f"X-Actor-Role must be one of {', '.join(rules.ROLES)}.")
    return rules.Caller(now=now, role=role)


async def appointment_write(ctx: WriteContext) -> tuple[Version, bool] | None:
    """Book, hold or change an Appointment that names Slots through the booking engine."""
    store, req, body = ctx.store, ctx.request, ctx.body
    current = None if req.method == "POST" else await store.current("Appointment", body["id"])
    if current is None or current.deleted:
        if not body.get("slot"):
            return None
        rid = req.assigned_id if req.method == "POST" else body["id"]
        caller = caller_of(req)
        version, _ = await once(
            store,
            req.header("idempotency-key") if req.method == "POST" else None,
            partial(fingerprint, req),
            lambda work: booking.book(store, body, caller, rid=rid, uow=work),
            ctx.uow,
        )
        return version, True
    if not (body.get("slot") or (current.resource or {}).get("slot")):
        unbooked = await booking.update_unbooked(
            store, current, body, caller_of(req), expected_version=ctx.expected_version, uow=ctx.uow
        )
        return unbooked, False
    changed = await booking.change(
        store, current, body, caller_of(req), expected_version=ctx.expected_version, uow=ctx.uow
    )
    return changed, False


async def appointment_response_write(ctx: WriteContext) -> tuple[Version, bool] | None:
    """A new AppointmentResponse accepts or declines its Appointment, in the same unit of work."""
    if ctx.request.method != "POST":
        return None
    store = ctx.store
    async with booking.within(store, ctx.uow) as work:
        await booking.respond(store, ctx.body, caller_of(ctx.request), uow=work)
        return await store.create(ctx.body, rid=ctx.request.assigned_id, uow=work), True


async def slot_write(ctx: WriteContext) -> tuple[Version, bool] | None:
    """Guard a client's update of a booked Slot; the write itself is the plain one."""
    if ctx.request.method != "POST" and "id" in ctx.body:
        current = await ctx.store.current("Slot", ctx.body["id"])
        if current is not None and not current.deleted:
            await booking.guard_slot_edit(ctx.store, current, ctx.body)
    return None


async def appointment_delete(ctx: DeleteContext) -> Version | None:
    return await booking.remove(
        ctx.store,
        ctx.current,
        caller_of(ctx.request),
        expected_version=ctx.expected_version,
        uow=ctx.uow,
    )


async def slot_delete(ctx: DeleteContext) -> Version | None:
    await booking.guard_slot_delete(ctx.store, ctx.current)
    return await ctx.store.delete(
        "Slot", ctx.current.id, expected_version=ctx.expected_version, uow=ctx.uow
    )


DELETE_HOOKS: dict[str, DeleteHook] = {"Appointment": appointment_delete, "Slot": slot_delete}

WRITE_HOOKS: dict[str, WriteHook] = {
    "Slot": slot_write,
    "Appointment": appointment_write,
    "AppointmentResponse": appointment_response_write,
}
