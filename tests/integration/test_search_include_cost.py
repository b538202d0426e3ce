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


def test_a_search_by_id_is_one_query_even_with_a_branched_criterion(mongo_uri: str) -> None:
    """`patient=` alone is split into two indexed queries (sole patient, or one of many); with
    `_id` the key picks the row, so the engine sends one query, and still applies `patient`."""

    async def scenario() -> tuple[int, int, list[list[str]]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
        database = Database(client, client[f"t{uuid.uuid4().hex[:12]}"], transactions=False)
        store = ResourceStore(database, indexer=ResourceIndexer(BASE))
        try:
            mine = await store.create(
                {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
                }
            )
            parser, engine = SearchParser(BASE, 20, 500), SearchEngine(store)

            async def filters(query: list[tuple[str, str]]) -> list[dict[str, Any]]:
                return await engine.filters(
                    "Appointment", parser.parse("Appointment", query).criteria
                )

            branched = await filters([("patient", "Patient/p1")])
            found = []
            for patient in ("Patient/p1", "Patient/p2"):
                keyed = await filters([("_id", mine.id), ("patient", patient)])
                assert len(keyed) == 1
                cursor = store.collection("Appointment").find(keyed[0])
                found.append([doc["_id"] async for doc in cursor])
            return len(branched), len(keyed), found
        finally:
            await client.close()

    branched, keyed, found = asyncio.run(scenario())
    assert (branched, keyed) == (2, 1)
    assert found[1] == [] and len(found[0]) == 1  # the patient criterion still applies
