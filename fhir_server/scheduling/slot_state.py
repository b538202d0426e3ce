"""What a Slot's status and counters mean, and how a claim or release changes them.

Capacity 1: `free` -> `busy` (booked) or `busy-tentative` (held, with the
hold's expiry on the Slot so an abandoned hold can be taken over).
Capacity n > 1 (group visits): a booked-count extension counts the places
taken; the Slot stays `free` until the count reaches n, then it is `busy`.
"""

from __future__ import annotations

from datetime import datetime

from fhir_server.fhir.errors import Conflict, Unprocessable
from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.fhir.resource import Resource
from fhir_server.scheduling import extensions as ext


def capacity(slot: Resource) -> int:
    item = ext.first(slot, ext.CAPACITY)
    return int(item.get("valuePositiveInt", 1)) if item else 1


def booked_count(slot: Resource) -> int:
    item = ext.first(slot, ext.BOOKED_COUNT)
    if item is not None:
        return int(item.get("valueUnsignedInt", 0))
    return 1 if slot.get("status") in ("busy", "busy-tentative") else 0


def hold_expiry(slot: Resource) -> datetime | None:
    item = ext.first(slot, ext.HOLD_EXPIRES)
    if item is None:
        return None
    return parse_instant(str(item["valueInstant"]))


def expired_hold(slot: Resource, now: datetime) -> bool:
    expiry = hold_expiry(slot)
    return slot.get("status") == "busy-tentative" and expiry is not None and expiry <= now


def refuse_unless_claimable(slot_id: str, slot: Resource, now: datetime) -> None:
    """Raise the reason a booking may not take this Slot now, if there is one."""
    status = slot.get("status")
    start = parse_instant(str(slot["start"]))
    if status == "entered-in-error":
        raise Unprocessable(
            f"Slot/{slot_id} was entered in error.", expression=("Appointment.slot",)
        )
    if start <= now:
        raise Conflict(f"Slot/{slot_id} has already started; it can no longer be booked.")
    if status == "busy-unavailable":
        raise Conflict(f"Slot/{slot_id} is not available for booking.")
    if status == "busy-tentative" and not expired_hold(slot, now):
        raise Conflict(f"Slot/{slot_id} is held by another booking.")
    if status == "busy":
        raise Conflict(f"Slot/{slot_id} is already booked.")


def claimed(slot: Resource, now: datetime, hold_until: datetime | None) -> Resource:
    """The Slot after one more place is taken (a hold on a single-place Slot is tentative)."""
    taken = 0 if expired_hold(slot, now) else booked_count(slot)
    return _with_count(slot, taken + 1, hold_until)


def released(slot: Resource) -> Resource:
    """The Slot after one place is given back."""
    return _with_count(slot, max(0, booked_count(slot) - 1), None)


def confirmed_hold(slot: Resource) -> Resource:
    """A held single-place Slot turned into a booked one."""
    return {**ext.without(slot, ext.HOLD_EXPIRES), "status": "busy"}


def _with_count(slot: Resource, count: int, hold_until: datetime | None) -> Resource:
    places = capacity(slot)
    out = ext.without(ext.without(slot, ext.HOLD_EXPIRES), ext.BOOKED_COUNT)
    if places > 1:
        out = ext.replaced(out, {"url": ext.BOOKED_COUNT, "valueUnsignedInt": count})
        out["status"] = "busy" if count >= places else "free"
        return out
    if count == 0:
        out["status"] = "free"
    elif hold_until is not None:
        out["status"] = "busy-tentative"
        out = ext.replaced(out, {"url": ext.HOLD_EXPIRES, "valueInstant": fhir_instant(hold_until)})
    else:
        out["status"] = "busy"
    return out
