"""What `_include` costs the store: one query per included type, whatever the number of
references (a week's schedule includes a hundred Patients; one query each made its page
wait on a hundred round trips)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pymongo import AsyncMongoClient

from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.search_syntax import SearchParser
from fhir_server.store.database import Database
from fhir_server.store.resources import ResourceStore
from fhir_server.store.search_engine import Found, SearchEngine
from tests.conftest import BASE
from tests.integration.test_booking_config_cache import _Commands

PATIENTS = 12


def test_included_patients_are_read_in_one_query(mongo_uri: str) -> None:
    commands = _Commands()

    async def scenario() -> tuple[list[str], list[tuple[str, str]]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_uri, event_listeners=[commands], tz_aware=True
        )
        database = Database(client, client[f"t{uuid.uuid4().hex[:12]}"], transactions=False)
        store = ResourceStore(database, indexer=ResourceIndexer(BASE))
        try:
            appointments: list[str] = []
            for n in range(PATIENTS):
                await store.update({"resourceType": "Patient", "id": f"p{n:02}"})
                await store.update({"resourceType": "Patient", "id": f"gone{n}"})
                await store.delete("Patient", f"gone{n}")
                refs = [f"Patient/p{n:02}", f"Patient/gone{n}"]
                appointment = await store.create(
                    {
                        "resourceType": "Appointment",
                        "status": "proposed",
                        "participant": [
                            {"actor": {"reference": r}, "status": "accepted"} for r in refs
                        ],
                    }
                )
                appointments.append(appointment.id)
            parsed = SearchParser(BASE, 20, 500).parse(
                "Appointment", [("_include", "Appointment:patient")]
            )
            rows = [
                await store.collection("Appointment").find_one({"_id": aid}) for aid in appointments
            ]
            engine = SearchEngine(store)
            commands.sent.clear()
            found = await engine.included(
                [Found("Appointment", row) for row in rows if row is not None],
                parsed.include,
                [],
            )
            return [f.doc["_id"] for f in found], list(commands.sent)
        finally:
            await client.close()

    ids, sent = asyncio.run(scenario())
    assert ids == [f"p{n:02}" for n in range(PATIENTS)]  # by id, the deleted ones left out
    assert sent == [("find", "Patient")]
