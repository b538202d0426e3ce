"""The booking state machine over Appointments and their Slots.

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

Every function takes `now` and the caller's role instead of reading a clock
or a token, so the rules are testable and the auth layer can supply the role.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from fhir_server.notifications.changes import appointment_deleted, appointment_written
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling import slot_state
from fhir_server.scheduling.settings import BookingSettings, booking_settings
from fhir_server.scheduling.slots import fhir_instant
from fhir_server.store import config_cache, patient_claims
from fhir_server.store import slots as slot_queries
from fhir_server.store.patient_claims import Claim
from fhir_server.store.request_store import RequestStore, request_store
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork

ROLES = ("patient", "practitioner", "staff")
_PROVIDERS = ("Practitioner/", "PractitionerRole/")
_RELEASING = ("cancelled", "entered-in-error")
_TRANSITIONS: dict[str, frozenset[str]] = {
    "proposed": frozenset({"pending", "booked", "cancelled", "entered-in-error"}),
    "pending": frozenset({"booked", "cancelled", "entered-in-error"}),
    "booked": frozenset(
        {"arrived", "checked-in", "fulfilled", "noshow", "cancelled", "entered-in-error"}
    ),
    "arrived": frozenset({"fulfilled", "entered-in-error"}),
    "checked-in": frozenset({"arrived", "fulfilled", "entered-in-error"}),
    "waitlist": frozenset({"cancelled", "entered-in-error"}),
}
_CLAIM_RETRIES = 5


@dataclass(frozen=True)
class Caller:
    """Who asks and when: the role decides the patient-only rules (cancellation cut-off)."""

    now: datetime
    role: str = "patient"

    @property
    def is_patient(self) -> bool:
        return self.role == "patient"

    @property
    def side(self) -> str:
        """Who a cancellation is by, in the notifications' terms: `patient` or `clinic`."""
        return "patient" if self.is_patient else "clinic"


@dataclass(frozen=True)
class Booking:
    """The Slots and Schedule a booking is about, as read before the claim."""

    slots: list[Version]
    schedule: Version
    settings: BookingSettings

    @property
    def start(self) -> datetime:
        return min(_moment(s.resource, "start") for s in self.slots)

    @property
    def end(self) -> datetime:
        return max(_moment(s.resource, "end") for s in self.slots)


def _body(version: Version) -> dict[str, Any]:
    assert version.resource is not None
    return version.resource


def _moment(resource: dict[str, Any] | None, key: str) -> datetime:
    assert resource is not None
    return datetime.fromisoformat(str(resource[key]).replace("Z", "+00:00"))


def _ref_id(reference: str, resource_type: str, where: str) -> str:
    kind, _, rid = reference.rpartition("/")
    if not kind.endswith(resource_type) or not rid:
        raise Unprocessable(f"{where} must reference a {resource_type}.", expression=(where,))
    return rid


def slot_ids(appointment: dict[str, Any]) -> list[str]:
    return [
        _ref_id(str(s.get("reference", "")), "Slot", "Appointment.slot")
        for s in appointment.get("slot", [])
    ]


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
    schedule_id = _ref_id(schedules.pop(), "Schedule", "Slot.schedule")
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


async def _allowed_actors(store: ResourceStore, schedule: dict[str, Any]) -> set[str]:
    """The Schedule's actors, plus the Practitioner of each PractitionerRole actor."""
    refs = {str(a.get("reference")) for a in schedule.get("actor", []) if a.get("reference")}
    for ref in list(refs):
        if ref.startswith("PractitionerRole/"):
            role = await store.current("PractitionerRole", ref.split("/", 1)[1])
            practitioner = (role.resource or {}).get("practitioner", {}) if role else {}
            if practitioner.get("reference"):
                refs.add(str(practitioner["reference"]))
    return refs


def _patients(appointment: dict[str, Any]) -> list[str]:
    return [
        str(p["actor"]["reference"])
        for p in appointment.get("participant", [])
        if str(p.get("actor", {}).get("reference", "")).startswith("Patient/")
    ]


def patient_of(appointment: dict[str, Any]) -> str:
    patients = _patients(appointment)
    if len(patients) != 1:
        raise Unprocessable(
            "A booking needs exactly one Patient participant.",
            expression=("Appointment.participant",),
        )
    return patients[0]


def _check_times(appointment: dict[str, Any], booking: Booking) -> None:
    for key, expected in (("start", booking.start), ("end", booking.end)):
        if key in appointment and _moment(appointment, key) != expected:
            raise Unprocessable(
                f"Appointment.{key} must equal the {key} of its Slot(s), {fhir_instant(expected)}.",
                expression=(f"Appointment.{key}",),
            )


def _check_rules(appointment: dict[str, Any], booking: Booking, caller: Caller) -> None:
    for slot in booking.slots:
        slot_state.refuse_unless_claimable(slot.id, _body(slot), caller.now)
    if _body(booking.schedule).get("active") is False:
        raise Conflict(f"Schedule/{booking.schedule.id} is not active.")
    settings = booking.settings
    if booking.start - caller.now < settings.minimum_notice:
        minutes = int(settings.minimum_notice.total_seconds() // 60)
        raise Unprocessable(
            f"This Schedule needs at least {minutes} minutes' notice for a booking.",
            expression=("Appointment.start",),
        )
    if booking.start - caller.now > timedelta(days=settings.maximum_days_ahead):
        raise Unprocessable(
            f"This Schedule takes bookings at most {settings.maximum_days_ahead} days ahead.",
            expression=("Appointment.start",),
        )
    if not settings.offers(appointment.get("appointmentType")):
        raise Unprocessable(
            "This Schedule does not offer that appointment type.",
            expression=("Appointment.appointmentType",),
        )


def claims_of(appointment: Version) -> list[Claim]:
    """The patient time an Appointment holds: its patients' claims while it is active."""
    body = _body(appointment)
    if body.get("status") not in slot_queries.ACTIVE or not (body.get("start") and body.get("end")):
        return []
    start, end = _moment(body, "start"), _moment(body, "end")
    return [Claim(patient, appointment.id, start, end) for patient in _patients(body)]


async def _release_patient_time(
    store: ResourceStore, appointment: Version, uow: UnitOfWork
) -> None:
    """Give the patient's time back when an active Appointment stops holding it (or moves)."""
    for held in claims_of(appointment):
        await patient_claims.release(store, held, uow)


async def _participants(
    store: ResourceStore, appointment: dict[str, Any], booking: Booking, pending: bool
) -> list[dict[str, Any]]:
    """The participants with the Schedule's actors added and statuses set for the outcome."""
    allowed = await _allowed_actors(store, _body(booking.schedule))
    given = appointment.get("participant", [])
    named = {str(p.get("actor", {}).get("reference", "")) for p in given}
    for ref in named:
        if ref and not ref.startswith("Patient/") and ref not in allowed:
            raise Unprocessable(
                f"The Slot belongs to Schedule/{booking.schedule.id}, which does not serve {ref}.",
                expression=("Appointment.participant",),
            )
    schedule_actors = [
        {"actor": {"reference": ref}, "required": "required"}
        for ref in sorted(allowed - named)
        if any(a.get("reference") == ref for a in _body(booking.schedule).get("actor", []))
    ]
    out = []
    for participant in [*given, *schedule_actors]:
        ref = str(participant.get("actor", {}).get("reference", ""))
        waits = pending and ref.startswith(_PROVIDERS)
        out.append({**participant, "status": "needs-action" if waits else "accepted"})
    return out


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
    appointment: dict[str, Any],
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
    Slots are claimed, so a failure leaves it untouched.
    """
    store = request_store(store)
    booking = await load_booking(store, slot_ids(appointment))
    _check_times(appointment, booking)
    _check_rules(appointment, booking, caller)
    patient = patient_of(appointment)
    pending = hold or booking.settings.provider_must_confirm
    hold_until = caller.now + booking.settings.hold_duration if hold else None
    body = {
        **ext.without(appointment, ext.HOLD_EXPIRES),
        "status": "pending" if pending else "booked",
        "start": fhir_instant(booking.start),
        "end": fhir_instant(booking.end),
        "participant": await _participants(store, appointment, booking, pending),
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
        replaced = None
        if old is not None:
            reason = {"text": "Rescheduled"}
            await _cancel(store, old, reason, caller, work, old.version)
            replaced = old.resource
        await appointment_written(store, work, written, replaced=replaced)
    return written


async def _expire_hold(store: ResourceStore, appointment_id: str, uow: UnitOfWork) -> None:
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
    await appointment_written(store, uow, written, before=held.resource)


def _check_cutoff(current: dict[str, Any], caller: Caller, settings: BookingSettings) -> None:
    if not caller.is_patient or current.get("status") != "booked":
        return
    if _moment(current, "start") - caller.now < settings.cancellation_cutoff:
        hours = settings.cancellation_cutoff.total_seconds() / 3600
        raise Unprocessable(
            f"Patients can cancel at most {hours:g} hours before the appointment; "
            "please contact the clinic.",
            expression=("Appointment.status",),
        )


async def _cancel(
    store: ResourceStore,
    current: Version,
    reason: dict[str, Any] | None,
    caller: Caller,
    uow: UnitOfWork,
    expected_version: int | None,
    new_body: dict[str, Any] | None = None,
    status: str = "cancelled",
) -> Version:
    body = _body(current)
    _check_transition(body, status, caller)
    holds_slots = body.get("status") not in _RELEASING
    if status == "cancelled" and not reason:
        raise Unprocessable(
            "A cancellation needs a cancelationReason.",
            expression=("Appointment.cancelationReason",),
        )
    ids = slot_ids(body)
    if ids and status == "cancelled" and holds_slots:
        booking = await load_booking(store, ids)
        _check_cutoff(body, caller, booking.settings)
    updated = {**ext.without(new_body or body, ext.HOLD_EXPIRES), "status": status}
    if reason:
        updated["cancelationReason"] = reason
    written = await _update(
        store, updated, current, uow, expected_version=expected_version, cancelled_by=caller.side
    )
    held = ext.first(body, ext.HOLD_EXPIRES) is not None
    for sid in dict.fromkeys(ids) if holds_slots else ():
        await _release(store, sid, uow, only_held=held)
    return written


async def _update(
    store: ResourceStore,
    body: dict[str, Any],
    current: Version,
    uow: UnitOfWork,
    *,
    expected_version: int | None = None,
    cancelled_by: str | None = None,
) -> Version:
    """Write the Appointment's next version (a compare-and-set on `current`'s, or the one given)."""
    expected = expected_version or current.version
    try:
        version, _ = await store.update(body, expected_version=expected, uow=uow)
    except PreconditionFailed:
        raise
    except Conflict:
        raise Conflict("The Appointment was changed by another request; retry.") from None
    if body.get("status") not in slot_queries.ACTIVE:
        await _release_patient_time(store, current, uow)
    before = current.resource if version.version == current.version + 1 else None
    await appointment_written(store, uow, version, cancelled_by=cancelled_by, before=before)
    return version


def _check_transition(current: dict[str, Any], status: str, caller: Caller) -> None:
    old = str(current.get("status"))
    if status == old:
        return
    if status not in _TRANSITIONS.get(old, frozenset()):
        raise Conflict(f"An Appointment that is {old} cannot become {status}.")
    if status == "noshow" and _moment(current, "start") > caller.now:
        raise Conflict("An Appointment cannot be marked noshow before it starts.")
    if status in ("arrived", "checked-in", "fulfilled", "noshow") and caller.is_patient:
        raise Unprocessable(
            f"Only clinic staff or the practitioner can mark an Appointment {status}.",
            expression=("Appointment.status",),
        )


def _statuses(appointment: dict[str, Any]) -> dict[str, str]:
    return {
        str(p.get("actor", {}).get("reference")): str(p.get("status"))
        for p in appointment.get("participant", [])
    }


def _decided(appointment: dict[str, Any]) -> str | None:
    """`booked` when every required participant accepted, `cancelled` when one declined."""
    required = [p for p in appointment.get("participant", []) if p.get("required") != "optional"]
    if any(p.get("status") == "declined" for p in required):
        return "cancelled"
    if all(p.get("status") == "accepted" for p in required):
        return "booked"
    return None


async def change(
    store: ResourceStore,
    current: Version,
    new: dict[str, Any],
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
        if set(slot_ids(new)) != set(slot_ids(old)) and status not in _RELEASING:
            return await _move(store, current, new, caller, work)
        _check_unchanged_times(old, new)
        if status in _RELEASING:
            reason = new.get("cancelationReason")
            return await _cancel(store, current, reason, caller, work, current.version, new, status)
        if status == old.get("status") and _statuses(new) != _statuses(old):
            decided = _decided(new) if status == "pending" else None
            if decided == "cancelled":
                reason = new.get("cancelationReason") or {"text": "Declined by a participant"}
                return await _cancel(store, current, reason, caller, work, current.version, new)
            if decided == "booked" and ext.first(old, ext.HOLD_EXPIRES) is None:
                return await _update(store, {**new, "status": "booked"}, current, work)
        if status == "booked" and old.get("status") == "pending":
            return await _confirm(store, current, new, caller, work)
        _check_transition(old, status, caller)
        return await _update(store, new, current, work)


def _check_unchanged_times(old: dict[str, Any], new: dict[str, Any]) -> None:
    for key in ("start", "end"):
        if old.get(key) and new.get(key) and _moment(old, key) != _moment(new, key):
            raise Unprocessable(
                f"Appointment.{key} follows its Slots; to move it, reference other Slots.",
                expression=(f"Appointment.{key}",),
            )


async def _confirm(
    store: ResourceStore, current: Version, new: dict[str, Any], caller: Caller, uow: UnitOfWork
) -> Version:
    """pending -> booked: a hold being booked, or staff/provider confirming."""
    old = _body(current)
    held = ext.first(old, ext.HOLD_EXPIRES) is not None
    if not held and caller.is_patient:
        raise Conflict("This Appointment is waiting for the provider's confirmation.")
    if held:
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
    participants = [
        {**p, "status": "accepted"}
        if not (settings.provider_must_confirm and caller.is_patient)
        else p
        for p in new.get("participant", old.get("participant", []))
    ]
    waits = any(p.get("status") == "needs-action" for p in participants)
    body = {
        **ext.without(new, ext.HOLD_EXPIRES),
        "status": "pending" if waits else "booked",
        "participant": participants,
    }
    return await _update(store, body, current, uow)


async def _move(
    store: ResourceStore, current: Version, new: dict[str, Any], caller: Caller, uow: UnitOfWork
) -> Version:
    """Reschedule in place: claim the new Slots, then free the old ones, in one unit of work."""
    old = _body(current)
    if old.get("status") not in ("booked", "pending", "proposed"):
        raise Conflict(f"An Appointment that is {old.get('status')} cannot be moved.")
    old_ids = slot_ids(old)
    if old_ids:
        _check_cutoff(old, caller, (await load_booking(store, old_ids)).settings)
    booking = await load_booking(store, [s for s in slot_ids(new) if s not in old_ids])
    moved = {k: v for k, v in new.items() if k not in ("start", "end")}
    _check_rules(moved, booking, caller)
    patient = patient_of(new)
    full = await load_booking(store, slot_ids(new))
    for slot in booking.slots:
        await _claim(store, slot, caller, None, uow)
    await _release_patient_time(store, current, uow)
    await patient_claims.claim(store, Claim(patient, current.id, full.start, full.end), uow)
    body = {**moved, "start": fhir_instant(full.start), "end": fhir_instant(full.end)}
    written = await _update(store, body, current, uow)
    for sid in old_ids:
        if sid not in slot_ids(new):
            await _release(store, sid, uow)
    return written


async def respond(
    store: ResourceStore, response: dict[str, Any], caller: Caller, uow: UnitOfWork | None = None
) -> Version:
    """Apply an AppointmentResponse's participantStatus to its Appointment."""
    ref = str(response.get("appointment", {}).get("reference", ""))
    appointment_id = _ref_id(ref, "Appointment", "AppointmentResponse.appointment")
    current = await store.current("Appointment", appointment_id)
    if current is None or current.deleted:
        raise Unprocessable(
            f"{ref} does not exist.", expression=("AppointmentResponse.appointment",)
        )
    actor = str(response.get("actor", {}).get("reference", ""))
    answer = str(response.get("participantStatus"))
    old = _body(current)
    if actor not in _statuses(old):
        raise Unprocessable(
            f"{actor or 'The actor'} is not a participant of {ref}.",
            expression=("AppointmentResponse.actor",),
        )
    participants = [
        {**p, "status": answer} if p.get("actor", {}).get("reference") == actor else p
        for p in old.get("participant", [])
    ]
    return await change(store, current, {**old, "participant": participants}, caller, uow=uow)


async def guard_slot_edit(store: ResourceStore, current: Version, new: dict[str, Any]) -> None:
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
    ids = list(dict.fromkeys(slot_ids(body))) if body.get("status") not in _RELEASING else []
    if ids:
        _check_cutoff(body, caller, (await load_booking(store, ids)).settings)
    held = ext.first(body, ext.HOLD_EXPIRES) is not None
    async with within(store, uow) as work:
        deleted = await store.delete(
            "Appointment", current.id, expected_version=expected_version, uow=work
        )
        for sid in ids:
            await _release(store, sid, work, only_held=held)
        await _release_patient_time(store, current, work)
        await appointment_deleted(store, work, current, cancelled_by=caller.side)
    return deleted


async def guard_slot_delete(store: ResourceStore, current: Version) -> None:
    """Refuse deleting a Slot that an active Appointment still books or holds."""
    on_slot = await slot_queries.appointments_on_slot(store, f"Slot/{current.id}")
    if any(_body(a).get("status") not in _RELEASING for a in on_slot):
        raise Conflict(f"Slot/{current.id} has bookings; cancel or move them before deleting it.")


async def release_expired_holds(store: ResourceStore, now: datetime) -> int:
    """Cancel holds past their expiry and free their Slots; returns how many were released."""
    released = 0
    held = await slot_queries.appointments_with_extension(store, ext.HOLD_EXPIRES, ("pending",))
    for appointment in held:
        body = _body(appointment)
        expiry = ext.first(body, ext.HOLD_EXPIRES)
        if body.get("status") != "pending" or expiry is None:
            continue
        if datetime.fromisoformat(str(expiry["valueInstant"]).replace("Z", "+00:00")) > now:
            continue
        with contextlib.suppress(Conflict, PreconditionFailed, NotFound):
            one = request_store(store)  # one view per unit of work: a failed one leaves nothing
            async with within(one, None) as work:
                await _expire_hold(one, appointment.id, work)
                for sid in slot_ids(body):
                    await _release(one, sid, work, only_held=True)
            released += 1
    return released
