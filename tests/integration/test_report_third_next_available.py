"""Third next available, weekly per Schedule and service, from the Slot history as it stood
at each week's measuring instant (Monday 00:00 in the report's zone), against answers
computed by hand; kept by the follower and rebuilt alike.

Zone UTC. Weeks measured: Mondays 2026-03-02, 03-09, 03-16 (today 2026-03-20).

Schedule s1 (Practitioner/d1, HealthcareService/h1); free Slots written 2026-02-20 on
03-04, 03-05, 03-10, 03-12 (two), 03-19, 03-25 (two). On 03-04 the 03-10 Slot is booked; on
03-06 a free Slot on 03-11 is added; on 03-17 the 03-19 Slot is deleted.
- week 03-02: 03-04, 03-05, 03-10 -> third on 03-10: 8 days (the booking came after).
- week 03-09: 03-11, 03-12, 03-12 -> 3 days.
- week 03-16: 03-19, 03-25, 03-25 -> 9 days (the deletion came after). Mean 6.67.

Schedule s2 (Practitioner/d2, Location/l1, HealthcareService/h2); free Slots written
2026-03-10 on 03-11, 03-12, 03-13 and three on 03-17: weeks 03-02 and 03-09 measured before
they existed (no value); week 03-16: 1 day. Mean 1.0.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.reporting import measures, rollups
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.report_store import ReportStore
from fhir_server.store.resources import ResourceStore, Version, history_row, stamped
from tests.integration.store_support import run
from tests.integration.test_report_rollups import tables

UTC_ZONE = ZoneInfo("UTC")
TODAY = date(2026, 3, 20)
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
S1, S2 = "Schedule/s1", "Schedule/s2"
S1_FREE = "2026-03-04 2026-03-05 2026-03-10 2026-03-12 2026-03-12 2026-03-19 2026-03-25 2026-03-25"


def slot(rid: str, schedule: str, day: str, status: str = "free") -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "id": rid,
        "schedule": {"reference": schedule},
        "status": status,
        "start": f"{day}T09:00:00Z",
        "end": f"{day}T09:20:00Z",
    }


async def later_version(
    store: ResourceStore, body: dict[str, Any] | None, rid: str, version: int, at: str
) -> None:
    """A Slot's later version written at a past instant (a booking, or a deletion)."""
    row = Version(
        "Slot", rid, version, at, body is None, stamped(body, rid, version, at) if body else None
    )
    await store.history.insert_one(history_row(row))


async def seed(store: ResourceStore) -> None:
    for rid, actors in (
        ("s1", ["Practitioner/d1", "HealthcareService/h1"]),
        ("s2", ["Practitioner/d2", "Location/l1", "HealthcareService/h2"]),
    ):
        schedule = {"resourceType": "Schedule", "actor": [{"reference": a} for a in actors]}
        await store.create(schedule, rid=rid)
    first = [
        (slot(f"a{n}", S1, day), "2026-02-20T10:00:00Z") for n, day in enumerate(S1_FREE.split())
    ]
    first += [(slot("a8", S1, "2026-03-11"), "2026-03-06T08:00:00Z")]
    first += [
        (slot(f"b{n}", S2, day), "2026-03-10T12:00:00Z")
        for n, day in enumerate(["2026-03-11", "2026-03-12", "2026-03-13"] + ["2026-03-17"] * 3)
    ]
    await insert_first_versions(store, first)
    await later_version(
        store, slot("a2", S1, "2026-03-10", "busy"), "a2", 2, "2026-03-04T12:00:00Z"
    )
    await later_version(store, None, "a5", 2, "2026-03-17T08:00:00Z")


async def report(store: ResourceStore, *extra: str, subject: str | None = None) -> Any:
    request = measures.Request(
        "third-next-available", *MARCH, subject=subject, stratifiers=tuple(extra)
    )
    return await measures.evaluate(ReportStore(store), request, late_hours=24, today=TODAY)


def scores(group: dict[str, Any], stratifier: str) -> dict[str, float | None]:
    (found,) = [s for s in group["stratifier"] if s["code"][0]["text"] == stratifier]
    return {s["value"]["text"]: s.get("measureScore", {}).get("value") for s in found["stratum"]}


def test_weekly_values_per_schedule_and_service(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        await seed(store)
        await rollups.follow(store, UTC_ZONE, page_size=4)
        found = await report(store, "service")
        assert [g["code"]["text"] for g in found["group"]] == [S1, S2]
        s1, s2 = found["group"]
        assert s1["measureScore"] == {
            "value": 6.67,
            "unit": "days",
            "system": "http://unitsofmeasure.org",
            "code": "d",
        }
        assert scores(s1, "period-week") == {
            "2026-03-02": 8.0,
            "2026-03-09": 3.0,
            "2026-03-16": 9.0,
        }
        assert scores(s1, "service") == {"HealthcareService/h1": 6.67}
        assert s2["measureScore"]["value"] == 1.0
        assert scores(s2, "period-week") == {
            "2026-03-02": None,
            "2026-03-09": None,
            "2026-03-16": 1.0,
        }
        assert scores(s2, "service") == {"HealthcareService/h2": 1.0}

        # A week is measured once its Monday has come: on 2026-03-10 only two weeks count.
        request = measures.Request("third-next-available", *MARCH)
        early = await measures.evaluate(
            ReportStore(store), request, late_hours=24, today=date(2026, 3, 10)
        )
        assert scores(early["group"][0], "period-week") == {"2026-03-02": 8.0, "2026-03-09": 3.0}

        # Narrowed to a service, a practitioner, a location.
        by_service = await report(store, subject="HealthcareService/h2")
        assert [g["code"]["text"] for g in by_service["group"]] == [S2]
        by_doctor = await report(store, subject="Practitioner/d1")
        assert [g["code"]["text"] for g in by_doctor["group"]] == [S1]
        by_place = await report(store, subject="Location/l1")
        assert [g["code"]["text"] for g in by_place["group"]] == [S2]

        # The follower kept what a rebuild computes from the history.
        maintained = await tables(store)
        assert any(tid.startswith("tna|w|") for tid in maintained)
        await rollups.rebuild(store, UTC_ZONE)
        assert await tables(store) == maintained
        assert (await report(store, "service"))["group"] == found["group"]

    run(mongo_uri, scenario)
