"""Each patient's booked minutes: the atomic patient-overlap check.

Two bookings of different Slots at overlapping times for one patient touch
no common Slot, so the Slots' compare-and-set cannot stop them both. Here a
booking claims every minute its appointment covers, as fields of one row per
patient and UTC day (`Patient/x|20260105`, field `m0930` holding the
appointment id), with a single conditional upsert: "set these fields where
none of them is set yet". Two appointments overlap exactly when they share a
covered minute (times are widened to whole minutes, so two that only share
a minute without overlapping count as overlapping: the safe side), and a
field can be set by one of them only, so of two concurrent overlapping
bookings exactly one claim succeeds, on one server process or many. When the
condition fails the upsert's insert collides with the existing row, which is
the 409. (Without transactions a day's first claim is a plain insert and a
later one a conditional update; none matched is the 409.)

One command for the check (no read first, two for a patient's second
booking of a day on the embedded store); a cancel, decline, expiry,
deletion or move unsets the appointment's minutes again, on the condition
that they still hold its id. Claims are written in the booking's unit of work
(staged in its intent where there are no transactions, see `store.intents`).
They are the only patient-overlap check: Appointments stored before claims
existed get theirs from a one-off backfill at startup
(`scheduling.claims_backfill`), recorded done in a marker row.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Self

from pymongo.errors import DuplicateKeyError, OperationFailure

from fhir_server.fhir.errors import Conflict
from fhir_server.store import markers
from fhir_server.store.clock import now_instant
from fhir_server.store.resources import ResourceStore
from fhir_server.store.unit_of_work import UnitOfWork

COLLECTION = "patient_claims"
_BACKFILLED = "patient_claims_backfill"
# The embedded store nests one condition per field; past ~1,000 its SQL is too deep.
_FIELDS_PER_COMMAND = 720
_DAY = 24 * 60
_FIELDS = tuple(f"m{minute // 60:02d}{minute % 60:02d}" for minute in range(_DAY))


@dataclass(frozen=True)
class Claim:
    """One appointment's time, as its patient's claim."""

    patient: str
    appointment: str
    start: datetime
    end: datetime

    def rows(self) -> list[tuple[str, list[str]]]:
        """(row id, minute fields) per UTC day, at most `_FIELDS_PER_COMMAND` fields each."""
        first = int(self.start.timestamp() // 60)
        end = -int(-self.end.timestamp() // 60)  # the minute the appointment ends in, included
        out: list[tuple[str, list[str]]] = []
        for day in range(first // _DAY, (end - 1) // _DAY + 1):
            date = datetime.fromtimestamp(day * _DAY * 60, UTC).strftime("%Y%m%d")
            lo, hi = max(first - day * _DAY, 0), min(end - day * _DAY, _DAY)
            for chunk in range(lo, hi, _FIELDS_PER_COMMAND):
                fields = _FIELDS[chunk : min(chunk + _FIELDS_PER_COMMAND, hi)]
                out.append((f"{self.patient}|{date}", list(fields)))
        return out


async def claim(store: ResourceStore, wanted: Claim, uow: UnitOfWork) -> None:
    """Claim the appointment's minutes; 409 when another appointment holds one of them
    (at once in a transaction, else when the unit of work applies its intent)."""
    for row, fields in wanted.rows():
        await _run(store, ClaimMinutes(row, tuple(fields), wanted.appointment), uow)


async def release(store: ResourceStore, held: Claim, uow: UnitOfWork) -> None:
    """Give the appointment's minutes back (those it still holds)."""
    for row, fields in held.rows():
        await _run(store, ReleaseMinutes(row, tuple(fields), held.appointment), uow)


async def _run(store: ResourceStore, op: ClaimMinutes | ReleaseMinutes, uow: UnitOfWork) -> None:
    if uow.deferred:
        uow.staged.ops.append(op)
    else:
        await op.apply(store.database.db, uow.session)


@dataclass(frozen=True)
class _Minutes:
    """Minute fields of one patient-day row, for one appointment (an intent's entry)."""

    kind: ClassVar[str]
    row: str
    fields: tuple[str, ...]
    appointment: str

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["row"], tuple(doc["fields"]), doc["appointment"])

    def to_doc(self) -> dict[str, Any]:
        return {"k": self.kind, "row": self.row, "fields": self.fields,
                "appointment": self.appointment}  # fmt: skip


@dataclass(frozen=True)
class ClaimMinutes(_Minutes):
    """Set the minute fields to the appointment, where none is set."""

    kind: ClassVar[str] = "claim"

    async def apply(self, db: Any, session: Any = None) -> None:
        rows = db[COLLECTION]
        mine = {"day": self.row.rpartition("|")[2], **dict.fromkeys(self.fields, self.appointment)}
        if session is None:
            # Without transactions (the embedded store) a patient's first claim of a day is
            # a plain insert: the embedded server stores it for half what an upsert costs (it
            # evaluates the upsert's condition per field in Python first). A duplicate `_id`
            # means the row exists: then the conditional update below decides.
            try:
                await rows.insert_one({"_id": self.row, **mine})
                return
            except DuplicateKeyError:
                pass
        free = {name: {"$exists": False} for name in self.fields}
        try:
            # In a transaction a failed insert would abort it, hence the upsert there; its
            # insert colliding with the existing row (a minute taken) is the 409.
            result = await rows.update_one(
                {"_id": self.row, **free}, {"$set": mine}, upsert=session is not None,
                session=session,
            )  # fmt: skip
        except DuplicateKeyError:
            raise _overlap() from None
        except OperationFailure as exc:
            if exc.has_error_label("TransientTransactionError"):
                raise Conflict(
                    "The patient's appointments were changed by another request; retry."
                ) from None
            raise
        if session is None and result.matched_count == 0:
            raise _overlap()

    async def undo(self, db: Any) -> None:
        await ReleaseMinutes(self.row, self.fields, self.appointment).apply(db)


@dataclass(frozen=True)
class ReleaseMinutes(_Minutes):
    """Unset the minute fields where all still hold the appointment."""

    kind: ClassVar[str] = "release"

    async def apply(self, db: Any, session: Any = None) -> None:
        await db[COLLECTION].update_one(
            {"_id": self.row, **dict.fromkeys(self.fields, self.appointment)},
            {"$unset": dict.fromkeys(self.fields, "")},
            session=session,
        )

    async def undo(self, db: Any) -> None:
        """Claim the minutes back where they are still free (a later booking keeps its own)."""
        with contextlib.suppress(Conflict):
            await ClaimMinutes(self.row, self.fields, self.appointment).apply(db)


def _overlap() -> Conflict:
    return Conflict("The patient already has an appointment that overlaps this time.")


async def forget_days_before(store: ResourceStore, day: date) -> int:
    """Drop the claim rows of UTC days before `day`; how many.

    A past day can no longer be booked (a past Slot is refused), so its rows
    only grow the collection: one per patient and day with a booking.
    """
    result = await store.database.db[COLLECTION].delete_many(
        {"day": {"$lt": day.strftime("%Y%m%d")}}
    )
    return int(result.deleted_count)


async def backfilled(store: ResourceStore) -> bool:
    """Whether the one-off claims backfill has completed on this database (one read)."""
    return await markers.read(store, _BACKFILLED) is not None


async def mark_backfilled(store: ResourceStore) -> None:
    await markers.write(store, _BACKFILLED, {"at": now_instant()})
