"""Demographics count distinct patients booked in the period, from their own rollups (a patient
with several appointments counts once), against answers computed by hand; suppressed.

April 2026, zone UTC: patient q1 (female, born 1980, SW1A) has appointments on 04-02, 04-09
and 04-16 and one on 05-06; q2..q12 (female, born 1980, SW1A) one each on 04-03; q13 (male,
born 2010, N1) two on 04-10 and 04-12; q14 (male, born 2010, N1) one on 04-25, later
cancelled (it still counts: it was booked).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.reporting import measures, metrics, rollups
from fhir_server.reporting.metrics import Query
from fhir_server.store.report_store import ReportStore
from fhir_server.store.resources import ResourceStore
from tests.integration.store_support import run
from tests.integration.test_report_rollups import tables

ZONE = ZoneInfo("UTC")


def visit(rid: str, patient: str, day: str, status: str = "fulfilled") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": rid,
        "status": status,
        "start": f"{day}T10:00:00Z",
        "end": f"{day}T10:20:00Z",
        "participant": [
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr"}, "status": "accepted"},
        ],
    }


async def seed(store: ResourceStore) -> None:
    for n in range(1, 15):
        adult = n <= 12
        await store.create(
            {
                "resourceType": "Patient",
                "gender": "female" if adult else "male",
                "birthDate": "1980-05-05" if adult else "2010-01-01",
                "address": [{"postalCode": "SW1A 1AA" if adult else "N1 9GU"}],
            },
            rid=f"q{n}",
        )
    days = {"q1": ["2026-04-02", "2026-04-09", "2026-04-16", "2026-05-06"]}
    days |= {f"q{n}": ["2026-04-03"] for n in range(2, 13)}
    days |= {"q13": ["2026-04-10", "2026-04-12"], "q14": ["2026-04-25"]}
    for patient, booked in days.items():
        for n, day in enumerate(booked):
            await store.create(visit(f"{patient}-{n}", patient, day), rid=f"{patient}-{n}")
    await store.update(visit("q14-0", "q14", "2026-04-25", "cancelled"))


async def exact(
    store: ResourceStore, start: date, end: date, by: str | None = None
) -> dict[str, tuple[int, int]]:
    """(distinct patients, appointments) by stratum, before suppression."""
    query = Query(rollups.PATIENTS, start, end)
    found = await metrics.summed(ReportStore(store), query, by)
    out = {}
    for stratum, counters in found.items():
        figures = metrics.demographics(Counter(counters), 24)
        out[stratum] = (
            figures["booked-patients"].counts["initial-population"],
            figures["appointments"].counts["initial-population"],
        )
    return out


def test_distinct_patients_by_period_and_stratum(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        await seed(store)
        await rollups.follow(store, ZONE)
        april = (date(2026, 4, 1), date(2026, 4, 30))
        assert await exact(store, *april) == {"*": (14, 17)}
        assert await exact(store, *april, "age-band") == {"45-64": (12, 14), "0-17": (2, 3)}
        # Days inside a month (day tables): q1 twice, q13 twice.
        assert await exact(store, date(2026, 4, 5), date(2026, 4, 20)) == {"*": (2, 4)}
        # A month and days of the next (month and day tables): q1 once across both.
        assert await exact(store, date(2026, 4, 1), date(2026, 5, 10)) == {"*": (14, 18)}
        # Days of April, then the whole of May: q1 (04-16, then 05-06) counts once.
        assert await exact(store, date(2026, 4, 10), date(2026, 5, 31)) == {"*": (3, 5)}
        assert await exact(store, date(2026, 4, 17), date(2026, 5, 31)) == {"*": (2, 2)}
        by_week = await metrics.by_period(
            ReportStore(store), Query(rollups.PATIENTS, *april), "period-week"
        )
        assert {
            week: metrics.demographics(c, 24)["booked-patients"].counts["initial-population"]
            for week, c in by_week.items()
            if c
        } == {"2026-03-30": 12, "2026-04-06": 2, "2026-04-13": 1, "2026-04-20": 1}

        # Suppressed on the way out: 14 shown, the strata rounded, "<11" and its complement.
        request = measures.Request("patient-demographics", *april)
        report = await measures.evaluate(
            ReportStore(store), request, late_hours=24, today=date(2026, 6, 1)
        )
        group = {g["code"]["coding"][0]["code"]: g for g in report["group"]}
        patients = group["booked-patients"]
        assert patients["population"][0]["count"] == 14
        (by_age,) = [s for s in patients["stratifier"] if s["code"][0]["text"] == "age-band"]
        shown = {s["value"]["text"]: s["population"][0].get("count") for s in by_age["stratum"]}
        assert shown == {"0-17": None, "45-64": None}  # 2 is <11; 12 would reveal it: hidden
        assert group["appointments"]["population"][0]["count"] == 17

        # The follower kept what a rebuild computes from the history.
        maintained = await tables(store)
        # April: 17 patient-days, 14 patients' first, 3 after one earlier that month.
        april_rows = maintained["patient|m|2026-04|none"]["*|*"]
        assert april_rows == {"booked": 17, "pm:none": 14, "pm:2026-04": 3}
        assert maintained["patient|d|2026-04-16|none"]["*|*"] == {
            "booked": 1,
            "pv:2026-04-09": 1,
            "pm:2026-04": 1,
            "nx:2026-05-06": 1,
        }
        await rollups.rebuild(store, ZONE)
        assert await tables(store) == maintained

    run(mongo_uri, scenario)
