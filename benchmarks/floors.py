"""The floors our own code is measured against: the same store commands, issued bare.

A FHIR search page or a booking costs what the store commands it needs cost,
plus what our code adds (parsing, rules, indexing, JSON, the Bundle). These
routes, served by the benchmark server beside the FHIR API (`serve_app`),
issue exactly those commands through PyMongo and nothing else, so
`ours / floor` is the share of the floor we keep (1.0: we add nothing):

- Slot page: the `find` the search issues for `schedule=X&status=free&start=ge..&start=lt..
  &_count=20` (same filter on `idx`, sort, limit 21), answered with the stored bodies as
  they are;
- booking: the seven commands `POST Appointment` with one Slot issues on a store without
  transactions (traced with PyMongo's command monitoring): read the Slot, read the Patient
  (the recipient), write the unit's intent (what it will write, one JSON text, over a
  settled intent of this process: `store.intents`), compare-and-set the Slot on its
  version, insert the patient's claim row, insert the Appointment row, insert the two
  history rows. The rows are copies of templates made once, with the ids of this request.
  (The Schedule is read too when this process's cached copy is older than
  `FHIR_CONFIG_CACHE_SECONDS`: left out here.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.instants import fhir_instant
from fhir_server.store.clock import now_instant
from fhir_server.store.intents import COLLECTION as INTENTS
from fhir_server.store.patient_claims import COLLECTION as CLAIMS
from fhir_server.store.patient_claims import Claim
from fhir_server.store.resources import ResourceStore, Version, first_row, history_row


def _digits(instant: str) -> str:
    """An intent's time as the real unit writes it (`store.intents`)."""
    return "".join(c for c in instant if c.isdigit())


def slot_page_query(schedule: str, low: str, high: str) -> dict[str, Any]:
    """The filter the search sends for one Schedule's free Slots with `start.lo` in [low, high)."""
    return {
        "idx.s.schedule": {"$eq": f"Schedule/{schedule}"},
        "idx.s.status": {"$eq": "free"},
        "idx.s.start.lo": {"$gte": low, "$lt": high},
    }


async def slot_page(store: ResourceStore, schedule: str, low: str, high: str) -> bytes:
    """The page's rows as the store returns them, their bodies joined into a JSON array."""
    cursor = store.collection("Slot").find(slot_page_query(schedule, low, high))
    rows = await cursor.sort([("_id", 1)]).limit(21).to_list()
    return b"[" + b",".join(str(row["body"]).encode() for row in rows[:20]) + b"]"


@dataclass
class BookingFloor:
    """Templates of the rows a booking writes, made once from a real booking's shapes."""

    appointment_row: dict[str, Any]
    appointment_history: dict[str, Any]
    start: datetime
    lanes: list[str] = field(default_factory=list)  # intent rows free for reuse

    @classmethod
    def make(cls, base_url: str, start: datetime) -> BookingFloor:
        updated = now_instant()
        body = {
            "resourceType": "Appointment",
            "id": "template",
            "status": "booked",
            "start": fhir_instant(start),
            "end": fhir_instant(start + timedelta(minutes=30)),
            "slot": [{"reference": "Slot/template"}],
            "participant": [
                {"actor": {"reference": "Patient/template"}, "status": "accepted"},
                {"actor": {"reference": "Location/template"}, "status": "accepted"},
            ],
        }
        row = first_row(body, ResourceIndexer(base_url), updated)
        stored = {**body, "meta": {"versionId": "1", "lastUpdated": updated}}
        history = history_row(Version("Appointment", "template", 1, updated, False, stored, "POST"))
        return cls(row, history, start)

    async def book(self, store: ResourceStore, slot_id: str, patient: str, rid: str) -> int:
        """The booking's seven commands for this Slot, Patient and new Appointment id."""
        slots = store.collection("Slot")
        slot = await slots.find_one({"_id": slot_id})
        if slot is None:
            return 404
        await store.collection("Patient").find_one({"_id": patient})
        version = int(slot["version"]) + 1
        body = str(slot["body"]).replace('"status":"free"', '"status":"busy"')
        claimed_slot = {**slot, "version": version, "body": body}
        end = self.start + timedelta(minutes=30)
        claims = Claim(f"Patient/{patient}", rid, self.start, end).rows()
        appointment = {**self.appointment_row, "_id": rid}
        slot_history = {
            **self.appointment_history,
            **{"_id": f"Slot/{slot_id}/{version}", "type": "Slot", "id": slot_id},
            **{"version": version, "method": "PUT", "body": body},
        }
        appointment_history = {**self.appointment_history, "_id": f"Appointment/{rid}/1"}
        intent = {
            "ops": [
                {"k": "put", "c": "Slot", "row": claimed_slot, "expect": slot["version"],
                 "prev": slot},
                *({"k": "claim", "row": row, "fields": fields, "appointment": rid}
                  for row, fields in claims),
                {"k": "put", "c": "Appointment", "row": appointment, "expect": None, "prev": None},
            ],
            "history": [slot_history, appointment_history],
            "key": None,
        }  # fmt: skip
        lane = self.lanes.pop() if self.lanes else uuid.uuid4().hex
        row = {"_id": lane, "n": uuid.uuid4().hex, "at": _digits(now_instant())}
        row |= {"ops": orjson.dumps(intent).decode(), "key": None}
        await store.database.db[INTENTS].replace_one({"_id": lane}, row, upsert=True)
        claimed = await slots.replace_one(
            {"_id": slot_id, "version": slot["version"]}, claimed_slot
        )
        if claimed.matched_count != 1:
            self.lanes.append(lane)
            return 409
        for row, fields in claims:
            mine = {"day": row.rpartition("|")[2], **dict.fromkeys(fields, rid)}
            await store.database.db[CLAIMS].insert_one({"_id": row, **mine})
        await store.collection("Appointment").insert_one(appointment)
        await store.history.insert_many([slot_history, appointment_history], ordered=False)
        self.lanes.append(lane)
        return 201
