"""Units of work that survive a crash on a store without transactions: the intent log.

Without transactions (the embedded store) a unit of work's writes are staged,
not sent. At commit the unit first writes its intent: one document naming
every write it will make. Then it applies them in three steps:

1. the compare-and-sets, in the order they were made: current rows replaced
   on condition of their expected version (a Slot claim, a cancel), new
   current rows inserted (their unique `_id`), patient minutes claimed or
   given back (`patient_claims`);
2. the history rows, one unordered insert: the commit point. A history row
   exists only once every compare-and-set of its unit has succeeded;
3. the Idempotency-Key's result.

A conflict in step 1 undoes the steps already made (each undo is conditional
on the row still holding exactly what the unit wrote: its version and `updated`,
compared in Python, as the embedded store compares ISO strings to the second)
and is the request's 409.

A process killed mid-way leaves its intent behind. `recovery.settle` finds
intents older than a few seconds and finishes them: past the commit point
(any of its history rows stored) it rolls forward (the missing history rows,
the key's result); before it, it rolls back (the undos, and the key's
reservation is released so a retry runs again). Every step is idempotent, so
settling twice, or alongside a late writer, agrees. A unit whose connection was
lost mid-way (the store restarted under a living process) settles itself the
same way (`finish`) as soon as the store answers again: left for the sweep, its
partial writes (a Slot claim) would be built on by other requests meanwhile.

Marking an intent done costs nothing: a process keeps a few intent rows
("lanes") and writes each unit's intent over the previous, settled one of
its lane. A lane left over holds a finished unit, which settling rolls
forward without a write (its history rows exist) and removes.

Intent rows hold the writes as one JSON text (`ops`): the embedded store
pays per stored field, not per byte.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    NetworkTimeout,
    PyMongoError,
)

from fhir_server.fhir.errors import Conflict
from fhir_server.store.clock import now_instant
from fhir_server.store.database import Database, collection_name

COLLECTION = "store_intents"
HISTORY = "history"
KEYS = "idempotency_keys"
_DUPLICATE_KEY = 11000
# A unit older than this is a dead writer's: settling it may undo it (a live one takes ms).
GRACE_SECONDS = 10.0
FORWARD, BACK = "forward", "back"  # how a unit cut short was settled


class Op(Protocol):
    """One staged compare-and-set: made when the unit commits, undone when it does not."""

    kind: ClassVar[str]

    def to_doc(self) -> dict[str, Any]: ...

    async def apply(self, db: Any) -> None:
        """Make the write; `Conflict` when another writer holds the target."""
        ...

    async def undo(self, db: Any) -> None:
        """Reverse the write where the target still holds it (else leave it)."""
        ...


def conflict(collection: str, rid: str) -> Conflict:
    return Conflict(f"{collection}/{rid} was changed by another request; retry.")


@dataclass(frozen=True)
class PutRow:
    """A current row written as version `row.version`: inserted (`expect` None) or replacing
    the row at version `expect` (`prev`, kept for the undo)."""

    kind: ClassVar[str] = "put"
    collection: str
    row: dict[str, Any]
    expect: int | None = None
    prev: dict[str, Any] | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PutRow:
        return cls(doc["c"], doc["row"], doc.get("expect"), doc.get("prev"))

    def to_doc(self) -> dict[str, Any]:
        return {"k": self.kind, "c": self.collection, "row": self.row,
                "expect": self.expect, "prev": self.prev}  # fmt: skip

    async def apply(self, db: Any) -> None:
        rows, rid = db[collection_name(self.collection)], self.row["_id"]
        if self.expect is None:
            try:
                await rows.insert_one(self.row)
            except DuplicateKeyError:
                raise conflict(self.collection, rid) from None
            return
        replaced = await rows.replace_one({"_id": rid, "version": self.expect}, self.row)
        if not replaced.matched_count:
            raise conflict(self.collection, rid)

    async def undo(self, db: Any) -> None:
        """Only this unit's own write is undone. Another unit may hold the same version (this
        one never applied, the row was free for it), and the embedded store compares `updated`
        (an ISO string) to the second only, so the filter cannot tell the two apart: the row is
        read and its `updated` compared here, exactly. Between the read and the write only a
        later version can replace it (a compare-and-set on our version), which the filter
        then misses."""
        rows, mine = (
            db[collection_name(self.collection)],
            {"_id": self.row["_id"], "version": self.row["version"]},
        )
        stored = await rows.find_one(mine, {"updated": 1})
        if stored is None or stored["updated"] != self.row["updated"]:
            return
        mine["updated"] = self.row["updated"]
        if self.prev is None:
            await rows.delete_one(mine)
        else:
            await rows.replace_one(mine, self.prev)


@dataclass(frozen=True)
class KeyResult:
    """The Idempotency-Key's record once its request's writes are in: what to answer a retry."""

    key: str
    token: str
    result: dict[str, Any]

    async def apply(self, db: Any, session: Any = None) -> None:
        await db[KEYS].update_one(
            {"_id": self.key}, {"$set": {"done": True, **self.result}}, upsert=True, session=session
        )

    async def release(self, db: Any) -> None:
        """The unit did not happen: free the key for a retry (only this request's reservation)."""
        await db[KEYS].delete_one({"_id": self.key, "done": False, "token": self.token})


@dataclass
class Staged:
    """What a transactionless unit of work will write, in the order it was asked to."""

    ops: list[Op] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    key: KeyResult | None = None
    current: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def put(self, op: PutRow) -> None:
        self.ops.append(op)
        self.current[(op.collection, op.row["_id"])] = op.row

    def commands(self) -> int:
        return len(self.ops) + bool(self.history) + bool(self.key)

    def to_doc(self) -> dict[str, Any]:
        return {
            "ops": orjson.dumps(
                {
                    "ops": [op.to_doc() for op in self.ops],
                    "history": self.history,
                    "key": vars(self.key) if self.key else None,
                }
            ).decode(),
            "key": self.key.key if self.key else None,
        }


def staged_from(doc: dict[str, Any], kinds: dict[str, Callable[[dict[str, Any]], Op]]) -> Staged:
    """The unit an intent row describes (`kinds`: each op kind's builder, by name)."""
    data = orjson.loads(doc["ops"])
    key = data.get("key")
    return Staged(
        ops=[kinds[op["k"]](op) for op in data["ops"]],
        history=data["history"],
        key=KeyResult(**key) if key else None,
    )


class _Lanes:
    """This process's intent rows: a unit writes its intent over a free lane's settled one."""

    def __init__(self) -> None:
        self.free: list[str] = []

    def take(self) -> str:
        return self.free.pop() if self.free else uuid.uuid4().hex

    def give(self, lane: str) -> None:
        self.free.append(lane)


_LANES: dict[int, _Lanes] = {}


def _lanes(db: Any) -> _Lanes:
    return _LANES.setdefault(id(db.client), _Lanes())


async def commit(database: Database, staged: Staged) -> None:
    """Apply a staged unit: intent, compare-and-sets, history (the commit point), key result."""
    db = database.db
    if staged.commands() <= 1:  # one command is atomic by itself: no intent needed
        await _apply_all(db, staged, [])
        return
    lanes = _lanes(db)
    lane = lanes.take()
    serial = uuid.uuid4().hex
    await db[COLLECTION].replace_one(
        {"_id": lane}, {"_id": lane, "n": serial, "at": _now_key(), **staged.to_doc()}, upsert=True
    )
    started = time.monotonic()
    applied: list[Op] = []
    try:
        await _apply_all(db, staged, applied, lambda: _still_ours(db, lane, serial, started))
    except Conflict:  # a known outcome: undone here, and the lane is free again
        await undo(db, applied, staged.key)
        lanes.give(lane)
        raise
    except ConnectionFailure as lost:
        # The connection was lost (a restarted store): the command in flight ran or not, and
        # no late write of it follows. The unit is settled as soon as the store answers, so
        # no other request builds on a write rolled back later (a Slot claimed by a unit that
        # never committed). A timeout may still be running in the store, and a store still
        # away leaves the intent to recovery after the grace.
        if isinstance(lost, NetworkTimeout) or (outcome := await _settle(db, staged)) is None:
            raise
        await _free(db, lanes, lane, serial)
        if outcome == BACK:
            raise
        return  # past its commit point: the unit is in
    # Any other failure has an unknown outcome: the intent stays, its lane is not reused, and
    # recovery settles it.
    lanes.give(lane)


async def _settle(db: Any, staged: Staged) -> str | None:
    """`finish` for a unit whose connection was lost; None while the store still does not answer."""
    try:
        return await finish(db, staged) or FORWARD
    except PyMongoError:
        return None


async def _free(db: Any, lanes: _Lanes, lane: str, serial: str) -> None:
    """Drop a settled unit's intent (if the store lets us) and reuse its lane."""
    with contextlib.suppress(PyMongoError):
        await db[COLLECTION].delete_one({"_id": lane, "n": serial})
        lanes.give(lane)


async def finish(db: Any, staged: Staged) -> str | None:
    """Settle a unit cut short: FORWARD past its commit point (one of its history rows is
    stored: they follow every compare-and-set), else BACK; None when it was already whole."""
    stored = await _stored(db, staged.history)
    if any(stored.get(row["_id"]) == row["updated"] for row in staged.history):
        return FORWARD if await _roll_forward(db, staged, stored) else None
    await undo(db, staged.ops, staged.key)
    return BACK


async def _stored(db: Any, history: list[dict[str, Any]]) -> dict[str, str]:
    """The `updated` of each of these history rows that is stored, by key."""
    if not history:
        return {}
    keys = [row["_id"] for row in history]
    cursor = db[HISTORY].find({"_id": {"$in": keys}}, {"updated": 1})
    return {row["_id"]: row["updated"] async for row in cursor}


async def _roll_forward(db: Any, staged: Staged, stored: dict[str, str]) -> bool:
    """Write what is missing past the commit point; whether anything was."""
    missing = [row for row in staged.history if stored.get(row["_id"]) != row["updated"]]
    await insert_history(db, missing)
    repaired = bool(missing)
    if staged.key is not None:
        record = await db[KEYS].find_one({"_id": staged.key.key})
        if record is None or not record.get("done"):
            await staged.key.apply(db)
            repaired = True
    return repaired


async def _apply_all(
    db: Any,
    staged: Staged,
    applied: list[Op],
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> None:
    inserts: dict[str, list[PutRow]] = {}
    for op in staged.ops:
        if isinstance(op, PutRow) and op.expect is None:  # new rows: one insert per collection
            inserts.setdefault(op.collection, []).append(op)
            continue
        await op.apply(db)
        applied.append(op)
    for collection, ops in inserts.items():
        applied.extend(ops)  # an undo of a row not inserted matches nothing
        await _insert_new(db, collection, ops)
    if before_commit is not None:
        await before_commit()
    await insert_history(db, staged.history)
    applied.clear()  # past the commit point: nothing is undone any more
    if staged.key is not None:
        await staged.key.apply(db)


async def _insert_new(db: Any, collection: str, ops: list[PutRow]) -> None:
    """Insert new current rows in one command; a taken `_id` is a conflict."""
    if len(ops) == 1:
        await ops[0].apply(db)
        return
    try:
        await db[collection_name(collection)].insert_many([op.row for op in ops], ordered=False)
    except BulkWriteError as exc:
        error = exc.details["writeErrors"][0]
        if error.get("code") == _DUPLICATE_KEY:
            raise conflict(collection, ops[error["index"]].row["_id"]) from None
        raise


async def _still_ours(db: Any, lane: str, serial: str, started: float) -> None:
    """A unit slower than half the grace checks that no settler took its intent meanwhile."""
    if time.monotonic() - started < GRACE_SECONDS / 2:
        return
    if await db[COLLECTION].find_one({"_id": lane, "n": serial}) is None:
        raise Conflict("The request took too long and was undone; retry.")


async def undo(db: Any, applied: list[Op], key: KeyResult | None) -> None:
    """Reverse the applied compare-and-sets, last first, and release the key."""
    for op in reversed(applied):
        await op.undo(db)
    if key is not None:
        await key.release(db)


async def insert_history(db: Any, rows: list[dict[str, Any]]) -> None:
    """Insert history rows; a key already taken holds a dead writer's orphan (the current
    row's compare-and-set, already won, is what decides a version), replaced by ours."""
    if not rows:
        return
    try:
        await db[HISTORY].insert_many(rows, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details["writeErrors"]
        if any(e.get("code") != _DUPLICATE_KEY for e in errors):
            raise
        for error in errors:
            row = rows[error["index"]]
            await db[HISTORY].replace_one({"_id": row["_id"]}, row)


def _now_key() -> str:
    """The intent's time as digits (the embedded store compares ISO strings to the second)."""
    return "".join(c for c in now_instant() if c.isdigit())
