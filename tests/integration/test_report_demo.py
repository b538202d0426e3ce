"""The demo's past appointments: written once, and the reports show them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fhir_server.demo.history import appointments, load_history, patients
from fhir_server.reporting import measures, rollups
from fhir_server.store.report_store import ReportStore
from fhir_server.store.resources import ResourceStore
from tests.integration.store_support import run

NOW = datetime.now(UTC)
UTC_ZONE = ZoneInfo("UTC")


def test_past_appointments_load_once_and_fill_the_reports(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        written = await load_history(store, NOW)
        assert written == len(patients()) + len(appointments(NOW)) > 500
        assert await load_history(store, NOW) == 0
        await rollups.follow(store, UTC_ZONE)

        async def groups(measure: str) -> dict[str, dict[str, int]]:
            request = measures.Request(measure, (NOW - timedelta(days=90)).date(), NOW.date())
            report = await measures.evaluate(
                ReportStore(store), request, late_hours=24, today=NOW.date()
            )
            return {
                g["code"]["coding"][0]["code"]: {
                    p["code"]["coding"][0]["code"]: p.get("count", 0)
                    for p in g.get("population", [])
                }
                for g in report["group"]
            }

        volume = await groups("appointment-volume")
        assert volume["booked"]["initial-population"] == len(appointments(NOW))
        assert volume["missed"]["initial-population"] > 11
        assert volume["cancelled"]["initial-population"] > 11
        channels = await groups("booking-channel")
        assert all(channels[c]["initial-population"] > 11 for c in ("portal", "clinic", "ehr"))
        late = await groups("late-cancellation-rate")
        assert 11 <= late["patient"]["numerator"] < late["patient"]["denominator"]

    run(mongo_uri, scenario)
