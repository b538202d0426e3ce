"""The floors our own code is measured against: the same store commands, issued bare.

A FHIR search page or a booking costs what the store commands it needs cost,
plus what our code adds (parsing, rules, indexing, JSON, the Bundle). These
routes, served by the benchmark server beside the FHIR API (`serve_app`),
issue exactly those commands through PyMongo and nothing else, so
`ours / floor` is the share of the floor we keep (1.0: we add nothing):

- Slot page: the `find` the search issues for `schedule=X&status=free&start=ge..&start=lt..
  &_count=20` (same filter on `idx`, sort, limit 21), answered with the stored bodies as
  they are;
- booking: the six commands `POST Appointment` with one Slot issues on a store without
  transactions (traced with PyMongo's command monitoring): read the Slot, compare-and-set
  it on its version, insert the patient's claim row, read the Patient (the recipient),
  insert the Appointment row, insert the two history rows. The rows are copies of
  templates made once, with the ids of this request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.instants import fhir_instant
from fhir_server.store.clock import now_instant
from fhir_server.store.patient_claims import COLLECTION as CLAIMS
from fhir_server.store.patient_claims import Claim
from fhir_server.store.resources import ResourceStore, Version, first_row, history_row


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
        """The booking's six commands for this Slot, Patient and new Appointment id."""
        slots = store.collection("Slot")
        slot = await slots.find_one({"_id": slot_id})
        if slot is None:
            return 404
        version = int(slot["version"]) + 1
        body = str(slot["body"]).replace('"status":"free"', '"status":"busy"')
        claimed = await slots.replace_one(
            {"_id": slot_id, "version": slot["version"]}, {**slot, "version": version, "body": body}
        )
        if claimed.matched_count != 1:
            return 409
        end = self.start + timedelta(minutes=30)
        for row, fields in Claim(f"Patient/{patient}", rid, self.start, end).rows():
            mine = {"day": row.rpartition("|")[2], **dict.fromkeys(fields, rid)}
            await store.database.db[CLAIMS].insert_one({"_id": row, **mine})
        await store.collection("Patient").find_one({"_id": patient})
        await store.collection("Appointment").insert_one({**self.appointment_row, "_id": rid})
        slot_history = {
            **self.appointment_history,
            **{"_id": f"Slot/{slot_id}/{version}", "type": "Slot", "id": slot_id},
            **{"version": version, "method": "PUT", "body": body},
        }
        appointment_history = {**self.appointment_history, "_id": f"Appointment/{rid}/1"}
        await store.history.insert_many([slot_history, appointment_history], ordered=False)
        return 201
