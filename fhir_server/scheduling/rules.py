"""The booking rules, pure: who may move an Appointment to which status, and when.

Nothing here reads a clock, a token or the store: the caller's role and
`now` come in a `Caller`, the Slots, Schedule and settings as read by the
orchestration (`booking`). Each check raises the `fhir.errors` error the
edge turns into an OperationOutcome (409 for a state that forbids the
change, 422 for a request that breaks a rule); `event_of` names the domain
event a write is, from the versions before and after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_server.fhir.appointment_status import ANNOUNCED, CLINIC_MARKS, MOVABLE
from fhir_server.fhir.errors import Conflict, Unprocessable
from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import extensions as ext
from fhir_server.scheduling import slot_state
from fhir_server.scheduling.events import (
    Booked,
    BookingEvent,
    Cancelled,
    Confirmed,
    Declined,
    HoldExpired,
    OutcomeChanged,
    Pending,
    Rescheduled,
)
from fhir_server.scheduling.settings import BookingSettings

ROLES = ("patient", "practitioner", "frontdesk", "admin")
"""The callers' roles, the same four words as the accounts' (`auth.roles.ROLES`)."""
PROVIDERS = ("Practitioner/", "PractitionerRole/")
TRANSITIONS: dict[str, frozenset[str]] = {
    "proposed": frozenset({"pending", "booked", "cancelled", "entered-in-error"}),
    "pending": frozenset({"booked", "cancelled", "entered-in-error"}),
    "booked": frozenset(
        {"arrived", "checked-in", "fulfilled", "noshow", "cancelled", "entered-in-error"}
    ),
    "arrived": frozenset({"fulfilled", "booked", "entered-in-error"}),
    "checked-in": frozenset({"arrived", "fulfilled", "booked", "entered-in-error"}),
    # Corrections of a recorded outcome (the clinic's only, `check_transition`).
    "fulfilled": frozenset({"noshow", "entered-in-error"}),
    "noshow": frozenset({"fulfilled", "entered-in-error"}),
    "waitlist": frozenset({"cancelled", "entered-in-error"}),
}
"""Status -> the statuses a client may move it to (any role; `check_transition` adds who)."""


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
        """Who a cancellation is by, as the events report it: `patient` or `clinic`."""
        return "patient" if self.is_patient else "clinic"


def moment(resource: Resource, key: str) -> datetime:
    """The instant at `resource[key]` (a `start` or `end`)."""
    return parse_instant(str(resource[key]))


def ref_id(reference: str, resource_type: str, where: str) -> str:
    """The id in a `Type/id` reference, or 422 naming `where` when it is not a `resource_type`."""
    kind, _, rid = reference.rpartition("/")
    if not kind.endswith(resource_type) or not rid:
        raise Unprocessable(f"{where} must reference a {resource_type}.", expression=(where,))
    return rid


def slot_ids(appointment: Resource) -> list[str]:
    return [
        ref_id(str(s.get("reference", "")), "Slot", "Appointment.slot")
        for s in appointment.get("slot", [])
    ]


def patients(appointment: Resource) -> list[str]:
    return [
        str(p["actor"]["reference"])
        for p in appointment.get("participant", [])
        if str(p.get("actor", {}).get("reference", "")).startswith("Patient/")
    ]


def patient_of(appointment: Resource) -> str:
    found = patients(appointment)
    if len(found) != 1:
        raise Unprocessable(
            "A booking needs exactly one Patient participant.",
            expression=("Appointment.participant",),
        )
    return found[0]


def is_hold(appointment: Resource) -> bool:
    """A hold: a pending Appointment that states when it lapses."""
    return ext.first(appointment, ext.HOLD_EXPIRES) is not None


def hold_lapsed(appointment: Resource, now: datetime) -> bool:
    """A pending hold whose expiry has come."""
    expiry = ext.first(appointment, ext.HOLD_EXPIRES)
    if appointment.get("status") != "pending" or expiry is None:
        return False
    return parse_instant(str(expiry["valueInstant"])) <= now


def participant_statuses(appointment: Resource) -> dict[str, str]:
    return {
        str(p.get("actor", {}).get("reference")): str(p.get("status"))
        for p in appointment.get("participant", [])
    }


def decided(appointment: Resource) -> str | None:
    """`booked` when every required participant accepted, `cancelled` when one declined."""
    required = [p for p in appointment.get("participant", []) if p.get("required") != "optional"]
    if any(p.get("status") == "declined" for p in required):
        return "cancelled"
    if all(p.get("status") == "accepted" for p in required):
        return "booked"
    return None


def check_times(appointment: Resource, start: datetime, end: datetime) -> None:
    """A booking's start and end, when given, are those of its Slots."""
    for key, expected in (("start", start), ("end", end)):
        if key in appointment and moment(appointment, key) != expected:
            raise Unprocessable(
                f"Appointment.{key} must equal the {key} of its Slot(s), {fhir_instant(expected)}.",
                expression=(f"Appointment.{key}",),
            )


def check_unchanged_times(old: Resource, new: Resource) -> None:
    """An update cannot move an Appointment by its times; only by its Slots."""
    for key in ("start", "end"):
        if old.get(key) and new.get(key) and moment(old, key) != moment(new, key):
            raise Unprocessable(
                f"Appointment.{key} follows its Slots; to move it, reference other Slots.",
                expression=(f"Appointment.{key}",),
            )


def check_bookable(
    appointment: Resource,
    slots: Sequence[tuple[str, Resource]],
    schedule: tuple[str, Resource],
    settings: BookingSettings,
    caller: Caller,
) -> None:
    """The Slots (id, body) are free, the Schedule is active and its window and types allow it."""
    for slot_id, slot in slots:
        slot_state.refuse_unless_claimable(slot_id, slot, caller.now)
    schedule_id, schedule_body = schedule
    if schedule_body.get("active") is False:
        raise Conflict(f"Schedule/{schedule_id} is not active.")
    start = min(moment(slot, "start") for _, slot in slots)
    if start - caller.now < settings.minimum_notice:
        minutes = int(settings.minimum_notice.total_seconds() // 60)
        raise Unprocessable(
            f"This Schedule needs at least {minutes} minutes' notice for a booking.",
            expression=("Appointment.start",),
        )
    if start - caller.now > timedelta(days=settings.maximum_days_ahead):
        raise Unprocessable(
            f"This Schedule takes bookings at most {settings.maximum_days_ahead} days ahead.",
            expression=("Appointment.start",),
        )
    if not settings.offers(appointment.get("appointmentType")):
        raise Unprocessable(
            "This Schedule does not offer that appointment type.",
            expression=("Appointment.appointmentType",),
        )


def check_cutoff(current: Resource, caller: Caller, settings: BookingSettings) -> None:
    """A patient cannot cancel, move or delete a booking closer to its start than the cut-off."""
    if not caller.is_patient or current.get("status") != "booked":
        return
    if moment(current, "start") - caller.now < settings.cancellation_cutoff:
        hours = settings.cancellation_cutoff.total_seconds() / 3600
        raise Unprocessable(
            f"Patients can cancel at most {hours:g} hours before the appointment; "
            "please contact the clinic.",
            expression=("Appointment.status",),
        )


def check_transition(current: Resource, status: str, caller: Caller) -> None:
    """`current` may become `status` for this caller (staying put is always allowed)."""
    old = str(current.get("status"))
    if status == old:
        return
    if status not in TRANSITIONS.get(old, frozenset()):
        raise Conflict(f"An Appointment that is {old} cannot become {status}.")
    if status == "noshow" and moment(current, "start") > caller.now:
        raise Conflict("An Appointment cannot be marked noshow before it starts.")
    check_outcome_recorder(old, status, caller)


def check_outcome_recorder(old: str, status: str, caller: Caller) -> None:
    """What happened on the day (and any correction of it) is the clinic's to record."""
    if status != old and (status in CLINIC_MARKS or old in CLINIC_MARKS) and caller.is_patient:
        raise Unprocessable(
            f"Only the front desk or the practitioner can mark an Appointment {status}.",
            expression=("Appointment.status",),
        )


def check_reason(status: str, reason: Resource | None) -> None:
    """A cancellation says why."""
    if status == "cancelled" and not reason:
        raise Unprocessable(
            "A cancellation needs a cancelationReason.",
            expression=("Appointment.cancelationReason",),
        )


def check_confirmable(current: Resource, caller: Caller) -> None:
    """pending -> booked: a patient books their own hold; only the clinic confirms the rest."""
    if not is_hold(current) and caller.is_patient:
        raise Conflict("This Appointment is waiting for the provider's confirmation.")


def check_movable(current: Resource) -> None:
    if current.get("status") not in MOVABLE:
        raise Conflict(f"An Appointment that is {current.get('status')} cannot be moved.")


def confirmed_participants(
    participants: list[Resource], settings: BookingSettings, caller: Caller
) -> list[Resource]:
    """Everyone accepts on a confirmation, unless a patient books where the provider confirms."""
    if settings.provider_must_confirm and caller.is_patient:
        return participants
    return [{**p, "status": "accepted"} for p in participants]


def booking_participants(
    appointment: Resource,
    schedule: tuple[str, Resource],
    allowed: set[str],
    pending: bool,
) -> list[Resource]:
    """The participants with the Schedule's actors added and statuses set for the outcome.

    `allowed` is every actor the Schedule serves (with each PractitionerRole's
    Practitioner); a named provider outside it is refused.
    """
    schedule_id, schedule_body = schedule
    given = appointment.get("participant", [])
    named = {str(p.get("actor", {}).get("reference", "")) for p in given}
    for ref in named:
        if ref and not ref.startswith("Patient/") and ref not in allowed:
            raise Unprocessable(
                f"The Slot belongs to Schedule/{schedule_id}, which does not serve {ref}.",
                expression=("Appointment.participant",),
            )
    actors = {str(a.get("reference")) for a in schedule_body.get("actor", [])}
    schedule_actors = [
        {"actor": {"reference": ref}, "required": "required"}
        for ref in sorted(allowed - named)
        if ref in actors
    ]
    out = []
    for participant in [*given, *schedule_actors]:
        ref = str(participant.get("actor", {}).get("reference", ""))
        waits = pending and ref.startswith(PROVIDERS)
        out.append({**participant, "status": "needs-action" if waits else "accepted"})
    return out


def _declined(appointment: Resource) -> bool:
    return any(p.get("status") == "declined" for p in appointment.get("participant", []))


def event_of(
    before: Resource | None,
    after: Resource,
    *,
    cancelled_by: str,
    replaced: Resource | None = None,
    superseded: bool = False,
) -> BookingEvent | None:
    """The domain event an Appointment write is, if any.

    - new and `booked` -> Booked; new and `pending` -> Pending (a hold is not
      announced); new and replacing another Appointment -> Rescheduled;
    - a hold that becomes `booked` -> Booked; `pending` -> `booked` -> Confirmed;
    - `cancelled` after a hold -> HoldExpired; after a participant declined a
      pending booking -> Declined; otherwise -> Cancelled, unless `superseded`
      (the old Appointment of a reschedule into a new one, whose Rescheduled
      event announces the move);
    - a new start time on an announced Appointment -> Rescheduled;
    - a status entering or leaving one the clinic records on the day -> OutcomeChanged.
    """
    status = after.get("status")
    if before is None:
        if status not in ANNOUNCED or is_hold(after):
            return None
        if replaced is not None:
            return Rescheduled(after, previous=replaced)
        return Booked(after) if status == "booked" else Pending(after)
    old = before.get("status")
    if status == "cancelled" and old != "cancelled":
        if is_hold(before):
            return HoldExpired(after)
        if old == "pending" and _declined(after):
            return Declined(after)
        return None if superseded else Cancelled(after, cancelled_by=cancelled_by)
    if status == "booked" and old == "pending":
        return Booked(after) if is_hold(before) else Confirmed(after)
    if status in ANNOUNCED and old in ANNOUNCED and before.get("start") != after.get("start"):
        return Rescheduled(after, previous=before)
    if status != old and (status in CLINIC_MARKS or old in CLINIC_MARKS):
        return OutcomeChanged(after, previous=before)
    return None


def deleted_event(last: Resource, *, cancelled_by: str) -> BookingEvent | None:
    """A deleted Appointment that was booked or pending is reported cancelled (its last content);
    one with a recorded outcome as entered in error."""
    if last.get("status") in CLINIC_MARKS:
        return OutcomeChanged({**last, "status": "entered-in-error"}, previous=last)
    if last.get("status") not in ANNOUNCED or is_hold(last):
        return None
    return Cancelled({**last, "status": "cancelled"}, cancelled_by=cancelled_by, deleted=True)
