"""A process that dies at its Nth store command: a fault-injecting wrapper of our `Database`.

Every command a store object sends (reads included) goes through the wrapped
collections and counts against a fuse. The Nth command raises `Crash`, either
before it reaches the store or after the store applied it (the process died
before it saw the answer), and every later command of that "process" raises
`Crash` as well, so nothing can tidy up: no undo, no key release. The real
database underneath is then handed to recovery, as a restarted server does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pymongo.errors import AutoReconnect

from fhir_server.notifications.codes import EVENTS
from fhir_server.notifications.message import message_id
from fhir_server.scheduling.booking import claims_of
from fhir_server.scheduling.events import HoldExpired, OutcomeChanged
from fhir_server.scheduling.rules import event_of
from fhir_server.store.clock import now_instant
from fhir_server.store.database import Database
from fhir_server.store.intents import HISTORY, KEYS
from fhir_server.store.patient_claims import COLLECTION as CLAIMS
from fhir_server.store.resources import (
    ResourceStore,
    Version,
    body_of,
    first_row,
    history_row,
    version_from_current,
)
from fhir_server.store.slots import ACTIVE

_COMMANDS = frozenset(
    {
        "find_one",
        "insert_one",
        "insert_many",
        "replace_one",
        "update_one",
        "update_many",
        "delete_one",
        "delete_many",
        "count_documents",
        "bulk_write",
        "find_one_and_update",
        "create_index",
    }
)


class Crash(BaseException):
    """The process died here (a BaseException: no `except Exception` of ours survives it)."""


@dataclass
class Fuse:
    """Blows at command `at` (1-based; None: never), before or `after` the store ran it.

    A fuse that `lives` is a lost connection instead: that command raises pymongo's
    `AutoReconnect` and the process goes on, the store answering again at once (or, `down`,
    not before the request has ended: its every later command raises it too)."""

    at: int | None = None
    after: bool = False
    lives: bool = False
    down: bool = False
    count: int = 0
    blown: bool = False
    sent: list[str] = field(default_factory=list)  # "command collection", in order

    def before_command(self, label: str) -> None:
        if self.blown:
            self._fail()
        self.count += 1
        self.sent.append(label)
        if self.count == self.at and not self.after:
            self._blow()

    def after_command(self) -> None:
        if self.count == self.at and self.after:
            self._blow()

    def _blow(self) -> None:
        self.blown = not self.lives or self.down
        self._fail()

    def _fail(self) -> None:
        if self.lives:
            raise AutoReconnect("connection to the store lost")
        raise Crash


class _Collection:
    def __init__(self, real: Any, fuse: Fuse) -> None:
        self._real = real
        self._fuse = fuse

    def find(self, *args: Any, **kwargs: Any) -> Any:
        self._fuse.before_command(f"find {self._real.name}")
        cursor = self._real.find(*args, **kwargs)
        self._fuse.after_command()
        return cursor

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in _COMMANDS:
            return attr
        fuse, label = self._fuse, f"{name} {self._real.name}"

        async def command(*args: Any, **kwargs: Any) -> Any:
            fuse.before_command(label)
            result = await attr(*args, **kwargs)
            fuse.after_command()
            return result

        return command


class _Db:
    def __init__(self, real: Any, fuse: Fuse) -> None:
        self._real = real
        self._fuse = fuse

    def __getitem__(self, name: str) -> _Collection:
        return _Collection(self._real[name], self._fuse)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def sweep(one: Callable[[int, bool], Awaitable[bool]]) -> None:
    """Run `one(at, after)`, the scenario killed at its command `at` (before the store ran
    it, and after), at each command in turn until a run reaches its end unkilled."""

    async def run() -> None:
        at = 1
        while await one(at, False) | await one(at, True):
            at += 1
        assert at > 5  # the scenario did reach the store

    asyncio.run(run())


def crashing(store: ResourceStore, fuse: Fuse) -> ResourceStore:
    """The store as a process that dies when `fuse` blows sees it."""
    database = store.database
    wrapped = Database(database.client, cast(Any, _Db(database.db, fuse)), transactions=False)
    return ResourceStore(wrapped, store.indexer)


# -- a small clinic written straight to the store, and the invariants a crash must not break --


async def seed(store: ResourceStore, start: datetime) -> Clinic:
    """A Schedule with three Slots (two at one time: a patient's overlap) and two patients
    with an e-mail address, stored as their first versions in one insert per collection."""
    email = [{"system": "email", "value": "someone@example.org"}]
    schedule = {"resourceType": "Schedule", "id": uuid.uuid4().hex, "active": True}
    slots = [
        {
            "resourceType": "Slot",
            "id": uuid.uuid4().hex,
            "schedule": {"reference": f"Schedule/{schedule['id']}"},
            "status": "free",
            "start": instant(start + timedelta(minutes=offset)),
            "end": instant(start + timedelta(minutes=offset + 30)),
        }
        for offset in (0, 0, 60)
    ]
    patients = [{"resourceType": "Patient", "id": uuid.uuid4().hex, "telecom": email}] * 2
    patients = [{**p, "id": uuid.uuid4().hex} for p in patients]
    updated = now_instant()
    history = []
    for rtype, resources in (("Schedule", [schedule]), ("Slot", slots), ("Patient", patients)):
        rows = [first_row(r, store.indexer, updated) for r in resources]
        await store.collection(rtype).insert_many(rows)
        history += [history_row(version_from_current(rtype, row)) for row in rows]
    await store.history.insert_many(history)
    return Clinic(slots=slots, patients=[p["id"] for p in patients])


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Clinic:
    """What one scenario may have written: every id it could have used, crash or not."""

    slots: list[dict[str, Any]] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    appointments: dict[str, str] = field(default_factory=dict)  # id -> its patient's id
    keys: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> appointment id


async def violations(store: ResourceStore, clinic: Clinic) -> list[str]:
    """Every broken invariant in the scenario's own database, as sentences naming ids.

    The database holds one scenario only, so each collection is read whole (one query each).
    """
    db = store.database.db
    current = {
        rtype: {doc["_id"]: doc async for doc in db[rtype].find({})}
        for rtype in ("Slot", "Appointment", "Communication")
    }
    history: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    async for row in db[HISTORY].find({}):
        history.setdefault((row["type"], row["id"]), {})[row["version"]] = row
    active = {
        aid: version_from_current("Appointment", doc)
        for aid, doc in current["Appointment"].items()
        if not doc["deleted"] and (body_of(doc) or {}).get("status") in ACTIVE
    }
    found = _slot_problems(current["Slot"], active)
    for rtype in ("Slot", "Appointment", "Communication"):
        rows = current[rtype]
        for rid in set(rows) | {rid for (t, rid) in history if t == rtype}:
            found += _history_problems(rtype, rid, rows.get(rid), history.get((rtype, rid), {}))
    found += _message_problems(clinic, history, set(current["Communication"]))
    keys = {doc["_id"]: doc async for doc in db[KEYS].find({})}
    for key, aid in clinic.keys.items():
        record = keys.get(f"booking:{key}")
        done = bool(record and record.get("done"))
        exists = aid in current["Appointment"]
        if done != exists or (done and record and record.get("id") != aid):
            found.append(f"key {key} (done {done}) disagrees with Appointment/{aid} ({exists})")
    claimed = {doc["_id"]: doc async for doc in db[CLAIMS].find({})}
    return found + _claim_problems(claimed, active)


def _slot_problems(slots: dict[str, Any], active: dict[str, Version]) -> list[str]:
    found = []
    for sid, doc in slots.items():
        ref = f"Slot/{sid}"
        holders = [a for a, v in active.items() if ref in _slot_refs(v)]
        status = (body_of(doc) or {}).get("status")
        if len(holders) > 1:
            found.append(f"{ref} is booked twice: {holders}")
        if (status in ("busy", "busy-tentative")) != bool(holders):
            found.append(f"{ref} is {status} with active appointments {holders}")
    return found


def _slot_refs(version: Version) -> set[str]:
    return {str(s.get("reference")) for s in (version.resource or {}).get("slot", [])}


def _history_problems(
    rtype: str, rid: str, current: dict[str, Any] | None, rows: dict[int, dict[str, Any]]
) -> list[str]:
    """The current version is the latest history version, and history has no gaps."""
    if current is None:
        return [f"{rtype}/{rid} has history {sorted(rows)} but no current row"]
    if sorted(rows) != list(range(1, current["version"] + 1)):
        return [f"{rtype}/{rid} at version {current['version']} has history {sorted(rows)}"]
    if rows[current["version"]]["updated"] != current["updated"]:
        return [f"{rtype}/{rid} version {current['version']} differs from its history row"]
    return []


def _message_problems(
    clinic: Clinic, history: dict[tuple[str, str], dict[int, dict[str, Any]]], stored: set[str]
) -> list[str]:
    """Every Appointment version that is an event has its patient's message, and every
    message of a scenario's appointment is about a version that was written."""
    found = []
    for aid, patient in clinic.appointments.items():
        rows = history.get(("Appointment", aid), {})
        before = None
        for number in range(1, 12):
            after = body_of(rows[number]) if number in rows else None
            event = _event(before, after)
            # a lapsed hold goes to hooks only; a recorded outcome to nobody
            expects = event is not None and not isinstance(event, HoldExpired | OutcomeChanged)
            ids = {message_id(f"{aid}|{k}|{number}|email|Patient/{patient}") for k in EVENTS}
            if expects and not ids & stored:
                found.append(f"Appointment/{aid}/_history/{number} has no message")
            if not expects and ids & stored:
                found.append(f"a message is about Appointment/{aid}/_history/{number}")
            before = after
    return found


def _event(before: dict[str, Any] | None, after: dict[str, Any] | None) -> object | None:
    """The booking event a stored version was (the old Appointment of a reschedule into a
    new one is cancelled with reason "Rescheduled" and announces nothing)."""
    if after is None:
        return None
    moved = (after.get("cancelationReason") or {}).get("text") == "Rescheduled"
    return event_of(before, after, cancelled_by="clinic", superseded=moved)


def _claim_problems(claimed: dict[str, dict[str, Any]], active: dict[str, Version]) -> list[str]:
    """Every patient's claimed minutes are exactly those of their active appointments."""
    wanted: dict[str, dict[str, str]] = {}
    for aid, version in active.items():
        for claim in claims_of(version):
            for row, fields in claim.rows():
                wanted.setdefault(row, {}).update(dict.fromkeys(fields, aid))
    found = []
    for row in sorted(set(claimed) | set(wanted)):
        held = {k: v for k, v in claimed.get(row, {}).items() if k.startswith("m")}
        if held != wanted.get(row, {}):
            found.append(f"claims of {row}: {sorted(set(held.values()))} held, "
                         f"{sorted(set(wanted.get(row, {}).values()))} active")  # fmt: skip
    return found
