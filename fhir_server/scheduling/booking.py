"""The booking state machine over Appointments and their Slots: the store side.

The rules (which status may follow which, for whom; notice, horizon and
cut-off; which event a write is) are pure and live in `rules`; this module
reads what they need, applies them, and writes the result in one unit of
work, publishing each write's domain event (`events`) inside it so the
messages it causes commit with it.

No double booking: a Slot is claimed by a compare-and-set update of its
current row (from the version that was read, which must show a free place)
inside the unit of work that also writes the Appointment. Two requests that
read the same free Slot cannot both write its next version, so exactly one
claim wins and the other gets 409; if the Appointment write fails the claim is
undone, so no Slot stays busy without an Appointment and no Appointment is
booked without its Slot.

No overlapping appointments for a patient: two bookings of different Slots
share no Slot row, so each also claims the patient's minutes it covers
(`store.patient_claims`, one conditional upsert in the same unit of work);
every way an Appointment stops holding its time gives them back.

Every function takes the caller (`rules.Caller`: `now` and role) instead of
reading a clock or a token, so the auth layer supplies the role.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from fhir_server.fhir.appointment_status import ACTIVE, RELEASING
from fhir_server.fhir.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from fhir_server.fhir.instants import fhir_instant
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import events, rules, slot_state
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling.rules import Caller, moment, slot_ids
from fhir_server.scheduling.settings import BookingSettings, booking_settings
from fhir_server.store import config_cache, patient_claims
from fhir_server.store import slots as slot_queries
from fhir_server.store.patient_claims import Claim
from fhir_server.store.request_store import RequestStore, request_store
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork

__all__ = [
    "Caller",
    "book",
    "change",
    "claims_of",
    "remove",
    "respond",
    "update_unbooked",
    "within",
]

_CLAIM_RETRIES = 5


@dataclass(frozen=True)
class Booking:
    """The Slots and Schedule a booking is about, as read before the claim."""

    slots: list[Version]
    schedule: Version
    settings: BookingSettings

    @property
    def start(self) -> datetime:
        return min(moment(_body(s), "start") for s in self.slots)

    @property
    def end(self) -> datetime:
        return max(moment(_body(s), "end") for s in self.slots)

    def check_bookable(self, appointment: Resource, caller: Caller) -> None:
        slots = [(s.id, _body(s)) for s in self.slots]
        schedule = (self.schedule.id, _body(self.schedule))
        rules.check_bookable(appointment, slots, schedule, self.settings, caller)


def _body(version: Version) -> Resource:
    assert version.resource is not None
    return version.resource


@contextlib.asynccontextmanager
async def within(store: ResourceStore, uow: UnitOfWork | None) -> AsyncIterator[UnitOfWork]:
    """The caller's unit of work (a transaction Bundle's), or a new one of our own.

    A request's store view writes its batched inserts before the unit of work ends.
    """
    if uow is not None:
        yield uow
        if isinstance(store, RequestStore):
            await store.flush(uow)
        return
    async with store.unit_of_work() as own:
        yield own
        if isinstance(store, RequestStore):
            await store.flush(own)


async def load_booking(store: ResourceStore, ids: list[str]) -> Booking:
    """Read the Slots and their (single) Schedule; 422 when they do not exist or disagree."""
    if not ids:
        raise Unprocessable("A booking needs at least one Slot.", expression=("Appointment.slot",))
    slots = []
    for sid in dict.fromkeys(ids):
        found = await store.current("Slot", sid)
        if found is None or found.deleted:
            raise Unprocessable(f"Slot/{sid} does not exist.", expression=("Appointment.slot",))
        slots.append(found)
    schedules = {str(_body(s).get("schedule", {}).get("reference", "")) for s in slots}
    if len(schedules) != 1:
        raise Unprocessable(
            "All Slots of one Appointment must belong to the same Schedule.",
            expression=("Appointment.slot",),
        )
    schedule_id = rules.ref_id(schedules.pop(), "Schedule", "Slot.schedule")
    schedule = await _schedule(store, schedule_id)
    if schedule is None:
        raise Unprocessable(f"The Slots' Schedule/{schedule_id} does not exist.")
    return Booking(slots, *schedule)


async def _schedule(
    store: ResourceStore, schedule_id: str
) -> tuple[Version, BookingSettings] | None:
    """The Schedule and its parsed booking settings, kept per process (`store.config_cache`)."""

    async def load() -> tuple[Version, BookingSettings] | None:
        found = await store.current("Schedule", schedule_id)
        if found is None or found.deleted:
            return None
        return found, booking_settings(_body(found))

    return await config_cache.cached(store.database.db, "Schedule", schedule_id, load)


async def _allowed_actors(store: ResourceStore, schedule: Resource) -> set[str]:
    """The Schedule's actors, plus the Practitioner of each PractitionerRole actor."""
    refs = {str(a.get("reference")) for a in schedule.get("actor", []) if a.get("reference")}
    for ref in list(refs):
        if ref.startswith("PractitionerRole/"):
            role = await store.current("PractitionerRole", ref.split("/", 1)[1])
            practitioner = (role.resource or {}).get("practitioner", {}) if role else {}
            if practitioner.get("reference"):
                refs.add(str(practitioner["reference"]))
    return refs


def claims_of(appointment: Version) -> list[Claim]:
    """The patient time an Appointment holds: its patients' claims while it is active."""
    body = _body(appointment)
    if body.get("status") not in ACTIVE or not (body.get("start") and body.get("end")):
        return []
    start, end = moment(body, "start"), moment(body, "end")
    return [Claim(patient, appointment.id, start, end) for patient in rules.patients(body)]


async def _release_patient_time(
    store: ResourceStore, appointment: Version, uow: UnitOfWork
) -> None:
    """Give the patient's time back when an active Appointment stops holding it (or moves)."""
    for held in claims_of(appointment):
        await patient_claims.release(store, held, uow)


async def _claim(
    store: ResourceStore,
    slot: Version,
    caller: Caller,
    hold_until: datetime | None,
    uow: UnitOfWork,
) -> list[str]:
    """Take a place on the Slot read at `slot.version`; the ids of holds it took over."""
    body = _body(slot)
    taken_over = []
    if slot_state.expired_hold(body, caller.now):
        held = await slot_queries.appointments_on_slot(store, f"Slot/{slot.id}")
        taken_over = [a.id for a in held if _body(a).get("status") == "pending"]
    try:
        await store.update(
            slot_state.claimed(body, caller.now, hold_until),
            expected_version=slot.version,
            uow=uow,
        )
    except (PreconditionFailed, Conflict):
        raise Conflict(f"Slot/{slot.id} was just taken by another request.") from None
    return taken_over


async def _release(
    store: ResourceStore, slot_id: str, uow: UnitOfWork, *, only_held: bool = False
) -> None:
    """Give one place back, re-reading on a concurrent change (group Slots).

    `only_held` frees a single-place Slot only while it is still tentatively
    held, so releasing an expired hold never frees a booking that took it over.
    """
    for _ in range(_CLAIM_RETRIES):
        current = await store.current("Slot", slot_id)
        if current is None or current.deleted:
            return
        body = _body(current)
        if only_held and slot_state.capacity(body) == 1 and body.get("status") != "busy-tentative":
            return
        try:
            await store.update(slot_state.released(body), expected_version=current.version, uow=uow)
            return
        except (PreconditionFailed, Conflict):
            continue
    raise Conflict(f"Slot/{slot_id} is changing too often to be freed now; retry.")


async def book(
    store: ResourceStore,
    appointment: Resource,
    caller: Caller,
    *,
    hold: bool = False,
    rid: str | None = None,
    replacing: str | None = None,
    uow: UnitOfWork | None = None,
) -> Version:
    """Book (or hold) the Slots the Appointment references and store the Appointment.

    A hold is a `pending` Appointment stating its expiry (the Schedule's hold
    duration); its Slot is `busy-tentative` until booked, cancelled or expired.

    `replacing` is the id of an Appointment being rescheduled: it is not counted
    as an overlap, and it is cancelled in the same unit of work after the new
    Slots are claimed, so a failure leaves it untouched. Only the new
    Appointment is announced (as rescheduled), not the old one's cancellation.
    """
    store = request_store(store)
    booking = await load_booking(store, slot_ids(appointment))
    rules.check_times(appointment, booking.start, booking.end)
    booking.check_bookable(appointment, caller)
    patient = rules.patient_of(appointment)
    pending = hold or booking.settings.provider_must_confirm
    hold_until = caller.now + booking.settings.hold_duration if hold else None
    allowed = await _allowed_actors(store, _body(booking.schedule))
    schedule = (booking.schedule.id, _body(booking.schedule))
    body = {
        **ext.without(appointment, ext.HOLD_EXPIRES),
        "status": "pending" if pending else "booked",
        "start": fhir_instant(booking.start),
        "end": fhir_instant(booking.end),
        "participant": rules.booking_participants(appointment, schedule, allowed, pending),
    }
    if hold_until is not None:
        body = ext.replaced(
            body, {"url": ext.HOLD_EXPIRES, "valueInstant": fhir_instant(hold_until)}
        )
    body.pop("id", None)
    body.pop("meta", None)
    rid = rid or str(uuid.uuid4())
    async with within(store, uow) as work:
        taken_over = []
        for slot in booking.slots:
            taken_over += await _claim(store, slot, caller, hold_until, work)
        for held_id in taken_over:
            await _expire_hold(store, held_id, work)
        old = await store.read("Appointment", replacing) if replacing else None
        if old is not None:  # its time is free for the new one (taken back on failure)
            await _release_patient_time(store, old, work)
        await patient_claims.claim(store, Claim(patient, rid, booking.start, booking.end), work)
        written = await store.create(body, rid=rid, uow=work)
        if old is not None:
            reason = {"text": "Rescheduled"}
            await _cancel(store, old, reason, caller, work, old.version, superseded=True)
        replaced = old.resource if old is not None else None
        event = rules.event_of(None, _body(written), cancelled_by=caller.side, replaced=replaced)
        await events.publish(store, work, event)
    return written


async def _expire_hold(store: ResourceStore, appointment_id: str, uow: UnitOfWork) -> None:
    """Cancel a hold that lapsed (or whose Slot a new booking took over); the clinic's side."""
    held = await store.current("Appointment", appointment_id)
    if held is None or held.deleted:
        return
    body = {
        **ext.without(_body(held), ext.HOLD_EXPIRES),
        "status": "cancelled",
        "cancelationReason": {"text": "Hold expired"},
    }
    written, _ = await store.update(body, expected_version=held.version, uow=uow)
    await _release_patient_time(store, held, uow)
    event = rules.event_of(_body(held), _body(written), cancelled_by="clinic")
    await events.publish(store, uow, event)


async def _cancel(
    store: ResourceStore,
    current: Version,
    reason: Resource | None,
    caller: Caller,
    uow: UnitOfWork,
    expected_version: int | None,
    new_body: Resource | None = None,
    status: str = "cancelled",
    *,
    superseded: bool = False,
) -> Version:
    """Cancel (or mark entered-in-error) and give the Slots back.

    `superseded`: a reschedule into a new Appointment cancels this one (see `rules.event_of`).
    """
    body = _body(current)
    rules.check_transition(body, status, caller)
    holds_slots = body.get("status") not in RELEASING
    rules.check_reason(status, reason)
    ids = slot_ids(body)
    if ids and status == "cancelled" and holds_slots:
        booking = await load_booking(store, ids)
        rules.check_cutoff(body, caller, booking.settings)
    updated = {**ext.without(new_body or body, ext.HOLD_EXPIRES), "status": status}
    if reason:
        updated["cancelationReason"] = reason
    written = await _update(
        store,
        updated,
        current,
        caller,
        uow,
        expected_version=expected_version,
        superseded=superseded,
    )
    for sid in dict.fromkeys(ids) if holds_slots else ():
        await _release(store, sid, uow, only_held=rules.is_hold(body))
    return written


async def _update(
    store: ResourceStore,
    body: Resource,
    current: Version,
    caller: Caller,
    uow: UnitOfWork,
    *,
    expected_version: int | None = None,
    superseded: bool = False,
) -> Version:
    """Write the Appointment's next version (a compare-and-set on `current`'s, or the one given)."""
    expected = expected_version or current.version
    try:
        version, _ = await store.update(body, expected_version=expected, uow=uow)
    except PreconditionFailed:
        raise
    except Conflict:
        raise Conflict("The Appointment was changed by another request; retry.") from None
    if body.get("status") not in ACTIVE:
        await _release_patient_time(store, current, uow)
    event = rules.event_of(
        _body(current), _body(version), cancelled_by=caller.side, superseded=superseded
    )
    await events.publish(store, uow, event)
    return version


async def change(
    store: ResourceStore,
    current: Version,
    new: Resource,
    caller: Caller,
    *,
    expected_version: int | None = None,
    uow: UnitOfWork | None = None,
) -> Version:
    """Apply a client's new version of a booked Appointment through the state machine.

    A changed slot list is a reschedule in place (new Slots claimed before the
    old are freed); a changed status is a transition; a participant's
    accept/decline on a pending Appointment books or cancels it.
    """
    old = _body(current)
    if expected_version is not None and expected_version != current.version:
        raise PreconditionFailed(
            f"Appointment/{current.id} is at version {current.version}, not {expected_version}."
        )
    status = str(new.get("status"))
    store = request_store(store)
    async with within(store, uow) as work:
        if set(slot_ids(new)) != set(slot_ids(old)) and status not in RELEASING:
            return await _move(store, current, new, caller, work)
        rules.check_unchanged_times(old, new)
        if status in RELEASING:
            reason = new.get("cancelationReason")
            return await _cancel(store, current, reason, caller, work, current.version, new, status)
        if status == old.get("status") and (
            rules.participant_statuses(new) != rules.participant_statuses(old)
        ):
            decided = rules.decided(new) if status == "pending" else None
            if decided == "cancelled":
                reason = new.get("cancelationReason") or {"text": "Declined by a participant"}
                return await _cancel(store, current, reason, caller, work, current.version, new)
            if decided == "booked" and not rules.is_hold(old):
                return await _update(store, {**new, "status": "booked"}, current, caller, work)
        if status == "booked" and old.get("status") == "pending":
            return await _confirm(store, current, new, caller, work)
        rules.check_transition(old, status, caller)
        return await _update(store, new, current, caller, work)


async def update_unbooked(
    store: ResourceStore,
    current: Version,
    new: Resource,
    caller: Caller,
    *,
    expected_version: int | None = None,
    uow: UnitOfWork | None = None,
) -> Version:
    """Write a new version of an Appointment that books no Slot (an EHR's own record) as given.

    No booking rule applies and nobody is messaged, as for any plain write, except that only
    the clinic records an outcome; that is reported (`OutcomeChanged`), so its visit is
    recorded in the same unit of work.
    """
    rules.check_outcome_recorder(str(_body(current).get("status")), str(new.get("status")), caller)
    store = request_store(store)
    async with within(store, uow) as work:
        written, _ = await store.update(new, expected_version=expected_version, uow=work)
        event = rules.event_of(_body(current), _body(written), cancelled_by="clinic")
        await events.publish(
            store, work, event if isinstance(event, events.OutcomeChanged) else None
        )
    return written


async def _confirm(
    store: ResourceStore, current: Version, new: Resource, caller: Caller, uow: UnitOfWork
) -> Version:
    """pending -> booked: a hold being booked, or staff/provider confirming."""
    old = _body(current)
    rules.check_confirmable(old, caller)
    if rules.is_hold(old):
        for sid in slot_ids(old):
            slot = await store.current("Slot", sid)
            if slot is None or slot.deleted:
                raise Conflict(f"Slot/{sid} no longer exists; the hold cannot be booked.")
            body = _body(slot)
            if body.get("status") == "busy-tentative":
                try:
                    await store.update(
                        slot_state.confirmed_hold(body), expected_version=slot.version, uow=uow
                    )
                except (PreconditionFailed, Conflict):
                    raise Conflict(f"The hold on Slot/{sid} was lost; book again.") from None
    settings = (await load_booking(store, slot_ids(old))).settings
    before: list[Resource] = old.get("participant", [])
    given: list[Resource] = new.get("participant", before)
    participants = rules.confirmed_participants(given, settings, caller)
    waits = any(p.get("status") == "needs-action" for p in participants)
    body = {
        **ext.without(new, ext.HOLD_EXPIRES),
        "status": "pending" if waits else "booked",
        "participant": participants,
    }
    return await _update(store, body, current, caller, uow)


async def _move(
    store: ResourceStore, current: Version, new: Resource, caller: Caller, uow: UnitOfWork
) -> Version:
    """Reschedule in place: claim the new Slots, then free the old ones, in one unit of work."""
    old = _body(current)
    rules.check_movable(old)
    old_ids = slot_ids(old)
    if old_ids:
        rules.check_cutoff(old, caller, (await load_booking(store, old_ids)).settings)
    booking = await load_booking(store, [s for s in slot_ids(new) if s not in old_ids])
    moved = {k: v for k, v in new.items() if k not in ("start", "end")}
    booking.check_bookable(moved, caller)
    patient = rules.patient_of(new)
    full = await load_booking(store, slot_ids(new))
    hold = ext.first(old, ext.HOLD_EXPIRES)  # a moved hold stays a hold on its new Slots
    hold_until = moment(hold, "valueInstant") if hold else None
    for slot in booking.slots:
        await _claim(store, slot, caller, hold_until, uow)
    await _release_patient_time(store, current, uow)
    await patient_claims.claim(store, Claim(patient, current.id, full.start, full.end), uow)
    body = {**moved, "start": fhir_instant(full.start), "end": fhir_instant(full.end)}
    written = await _update(store, body, current, caller, uow)
    for sid in old_ids:
        if sid not in slot_ids(new):
            await _release(store, sid, uow)
    return written


async def respond(
    store: ResourceStore, response: Resource, caller: Caller, uow: UnitOfWork | None = None
) -> Version:
    """Apply an AppointmentResponse's participantStatus to its Appointment."""
    ref = str(response.get("appointment", {}).get("reference", ""))
    appointment_id = rules.ref_id(ref, "Appointment", "AppointmentResponse.appointment")
    current = await store.current("Appointment", appointment_id)
    if current is None or current.deleted:
        raise Unprocessable(
            f"{ref} does not exist.", expression=("AppointmentResponse.appointment",)
        )
    actor = str(response.get("actor", {}).get("reference", ""))
    answer = str(response.get("participantStatus"))
    old = _body(current)
    if actor not in rules.participant_statuses(old):
        raise Unprocessable(
            f"{actor or 'The actor'} is not a participant of {ref}.",
            expression=("AppointmentResponse.actor",),
        )
    participants = [
        {**p, "status": answer} if p.get("actor", {}).get("reference") == actor else p
        for p in old.get("participant", [])
    ]
    return await change(store, current, {**old, "participant": participants}, caller, uow=uow)


async def guard_slot_edit(store: ResourceStore, current: Version, new: Resource) -> None:
    """Refuse a direct edit of a Slot's status, times or Schedule while it has bookings.

    Bookings change Slots only through this engine; a client flipping a booked
    Slot to free would allow a double booking.
    """
    old = _body(current)
    if all(old.get(k) == new.get(k) for k in ("status", "start", "end", "schedule")):
        return
    if await slot_queries.appointments_on_slot(store, f"Slot/{current.id}"):
        raise Conflict(
            f"Slot/{current.id} has bookings; cancel or move them before changing the Slot."
        )


async def remove(
    store: ResourceStore,
    current: Version,
    caller: Caller,
    *,
    expected_version: int | None,
    uow: UnitOfWork | None,
) -> Version | None:
    """Delete an Appointment and give back, in the same unit of work, the Slots it holds.

    Deleting is not a way round the cancellation cut-off: a patient is held to
    it here as when cancelling.
    """
    store = request_store(store)
    body = _body(current)
    ids = list(dict.fromkeys(slot_ids(body))) if body.get("status") not in RELEASING else []
    if ids:
        rules.check_cutoff(body, caller, (await load_booking(store, ids)).settings)
    async with within(store, uow) as work:
        deleted = await store.delete(
            "Appointment", current.id, expected_version=expected_version, uow=work
        )
        for sid in ids:
            await _release(store, sid, work, only_held=rules.is_hold(body))
        await _release_patient_time(store, current, work)
        await events.publish(store, work, rules.deleted_event(body, cancelled_by=caller.side))
    return deleted


async def guard_slot_delete(store: ResourceStore, current: Version) -> None:
    """Refuse deleting a Slot that an active Appointment still books or holds."""
    on_slot = await slot_queries.appointments_on_slot(store, f"Slot/{current.id}")
    if any(_body(a).get("status") not in RELEASING for a in on_slot):
        raise Conflict(f"Slot/{current.id} has bookings; cancel or move them before deleting it.")


async def release_expired_holds(store: ResourceStore, now: datetime) -> int:
    """Cancel holds past their expiry and free their Slots; returns how many were released."""
    released = 0
    held = await slot_queries.appointments_with_extension(store, ext.HOLD_EXPIRES, ("pending",))
    for appointment in held:
        body = _body(appointment)
        if not rules.hold_lapsed(body, now):
            continue
        with contextlib.suppress(Conflict, PreconditionFailed, NotFound):
            one = request_store(store)  # one view per unit of work: a failed one leaves nothing
            async with within(one, None) as work:
                await _expire_hold(one, appointment.id, work)
                for sid in slot_ids(body):
                    await _release(one, sid, work, only_held=True)
            released += 1
    return released
