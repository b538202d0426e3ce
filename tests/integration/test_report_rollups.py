"""The rollups kept from the history equal the rollups rebuilt from it, after a random mix
of bookings, cancellations, reschedules, no-shows, holds, deletions and reminders, with
runs repeated and cut short by crashes."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhir_server.reporting import rollups
from fhir_server.reporting.channel import CANCEL_REASON_SYSTEM, CHANNEL_URL
from fhir_server.reporting.facts import HOLD_EXPIRES
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.clock import to_instant
from fhir_server.store.report_store import CELLS, ReportStore
from fhir_server.store.resources import ResourceStore
from tests.integration.store_support import run

ZONE = ZoneInfo("Europe/London")
NOW = datetime.now(UTC).replace(microsecond=0)


def instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def appointment(rid: str, rng: random.Random, status: str = "booked") -> dict[str, Any]:
    start = NOW + timedelta(hours=rng.randint(-24 * 60, 24 * 30))
    return {
        "resourceType": "Appointment",
        "id": rid,
        "status": status,
        "start": instant(start),
        "end": instant(start + timedelta(minutes=20)),
        "appointmentType": {"coding": [{"code": rng.choice(["ROUTINE", "FOLLOWUP"])}]},
        "extension": [{"url": CHANNEL_URL, "valueCode": rng.choice(["portal", "app", "ehr"])}],
        "participant": [
            {"actor": {"reference": f"Patient/p{rng.randint(1, 4)}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/dr{rng.randint(1, 3)}"}, "status": "accepted"},
            {"actor": {"reference": "Location/main"}, "status": "accepted"},
        ],
    }


async def patients(store: ResourceStore) -> None:
    for n, (gender, born, code) in enumerate(
        [
            ("female", "1950-02-03", "SW1A 1AA"),
            ("male", "1990-06-30", "EC1"),
            ("other", None, None),
            ("female", "2015-01-01", "N1 9GU"),
        ],
        start=1,
    ):
        body: dict[str, Any] = {"resourceType": "Patient", "id": f"p{n}", "gender": gender}
        if born:
            body["birthDate"] = born
        if code:
            body["address"] = [{"postalCode": code}]
        await store.update(body)
    for n, service in ((1, "HealthcareService/h1"), (2, None)):
        actors = [{"reference": f"Practitioner/dr{n}"}]
        actors += [{"reference": service}] if service else []
        await store.update({"resourceType": "Schedule", "id": f"sc{n}", "actor": actors})


async def tables(store: ResourceStore) -> dict[str, Any]:
    found = ReportStore(store)
    ids = [doc["_id"] async for doc in store.database.db[CELLS].find({}, {"_id": 1})]
    # A table emptied by changes is kept (its `seq` guards replays); the rebuild writes none.
    return {tid: rows for tid, (_, rows) in (await found.tables(ids)).items() if rows}


async def random_slot_change(store: ResourceStore, rng: random.Random) -> None:
    """Add a free Slot, or book, free or delete one (third next available's weekly tables)."""
    found = [doc["_id"] async for doc in store.collection("Slot").find({"deleted": False})]
    if not found or rng.random() < 0.4:
        start = NOW + timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 8))
        slot = {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/sc{rng.randint(1, 2)}"},
            "status": "free",
            "start": instant(start),
            "end": instant(start + timedelta(minutes=20)),
        }
        await store.create(slot, rid=f"s{rng.getrandbits(40):x}")
        return
    rid = rng.choice(sorted(found))
    if rng.random() < 0.2:
        await store.delete("Slot", rid)
        return
    current = await store.current("Slot", rid)
    body = {k: v for k, v in (current.resource if current else {}).items() if k != "meta"}
    await store.update(body | {"status": rng.choice(["busy", "free"])})


async def random_history(store: ResourceStore, rng: random.Random, steps: int) -> None:
    """Write `steps` random changes, following (and sometimes crashing) between them."""
    live: dict[str, dict[str, Any]] = {}
    for _ in range(steps):
        choice = rng.random()
        if choice > 0.85:
            await random_slot_change(store, rng)
            continue
        if choice < 0.3 or not live:
            rid = f"a{rng.getrandbits(48):x}"
            body = appointment(rid, rng)
            if rng.random() < 0.2:  # an EHR's record of the past, final from its first version
                body["status"] = rng.choice(["fulfilled", "noshow", "cancelled"])
            elif rng.random() < 0.2:  # a $hold
                body["status"] = "pending"
                body["extension"].append({"url": HOLD_EXPIRES, "valueInstant": instant(NOW)})
            live[rid] = (await store.create(body, rid=rid)).resource or {}
        else:
            rid = rng.choice(sorted(live))
            body = {k: v for k, v in live[rid].items() if k != "meta"}
            body["extension"] = [e for e in body.get("extension", []) if e["url"] != HOLD_EXPIRES]
            action = rng.choice(["cancel", "reschedule", "noshow", "fulfil", "delete", "remind"])
            if action == "delete":
                await store.delete("Appointment", rid)
                del live[rid]
                continue
            if action == "remind":
                await store.create(
                    {
                        "resourceType": "Communication",
                        "status": "completed",
                        "category": [{"coding": [{"code": "reminder-1440"}]}],
                        "recipient": [{"reference": "Patient/p1"}],
                        "about": [{"reference": f"Appointment/{rid}/_history/1"}],
                    }
                )
                continue
            if action == "cancel":
                code = rng.choice(["pat", "prov", None])
                reason: dict[str, Any] = {"text": "why"}
                if code:
                    reason["coding"] = [{"system": CANCEL_REASON_SYSTEM, "code": code}]
                body |= {"status": "cancelled", "cancelationReason": reason}
            elif action == "reschedule":
                start = NOW + timedelta(hours=rng.randint(1, 24 * 20))
                body |= {"start": instant(start), "end": instant(start + timedelta(minutes=20))}
            else:
                body["status"] = "noshow" if action == "noshow" else "fulfilled"
            live[rid] = (await store.update(body))[0].resource or {}
        if rng.random() < 0.3:
            await rollups.follow(store, ZONE, page_size=rng.choice([3, 50]))


def test_maintained_rollups_equal_the_rebuild(
    mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(17)
    real_put_items = ReportStore.put_items
    crashes = {"left": 3}

    async def crashing_put_items(self: ReportStore, items: list[dict[str, Any]]) -> None:
        if crashes["left"] and rng.random() < 0.2:
            crashes["left"] -= 1
            raise ConnectionError("store went away")
        await real_put_items(self, items)

    async def scenario(store: ResourceStore) -> None:
        await patients(store)
        monkeypatch.setattr(ReportStore, "put_items", crashing_put_items)
        for _ in range(6):
            # A run cut short after it changed tables: the next run replays its batch.
            with contextlib.suppress(ConnectionError):
                await random_history(store, rng, 20)
        for _ in range(5):
            try:
                await rollups.follow(store, ZONE)
                await rollups.follow(store, ZONE)  # a rerun changes nothing
                break
            except ConnectionError:
                continue
        monkeypatch.setattr(ReportStore, "put_items", real_put_items)
        await rollups.follow(store, ZONE)
        maintained = await tables(store)
        assert crashes["left"] < 3, "no crash was injected: the test proves less than it says"
        assert maintained, "nothing was counted"

        seen: list[tuple[str, int]] = []
        count = await rollups.rebuild(store, ZONE, lambda stream, n: seen.append((stream, n)))
        assert count > 0 and seen
        assert await tables(store) == maintained

        total = maintained["appointment|m|" + NOW.strftime("%Y-%m") + "|none"]["*|*"]
        assert total["booked"] > 0
        # Distinct patients and third next available's weeks are compared too.
        booked = maintained["patient|m|" + NOW.strftime("%Y-%m") + "|none"]["*|*"]
        assert any(name.startswith("pm:") for name in booked)
        assert any(tid.startswith("tna|w|") for tid in maintained)

    run(mongo_uri, scenario)


def test_a_version_stored_late_is_still_counted_once(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        await patients(store)
        rng = random.Random(5)
        await store.create(appointment("first", rng), rid="first")
        await rollups.follow(store, ZONE)
        # Written 30 s ago, stored only now (its request ended late): before the marker.
        late = appointment("late", rng)
        assert await insert_first_versions(
            store, [(late, to_instant(datetime.now(UTC) - timedelta(seconds=30)))]
        )
        await rollups.follow(store, ZONE)
        await rollups.follow(store, ZONE)
        items = await ReportStore(store).items_of(["Appointment/first", "Appointment/late"])
        assert sorted(items) == ["Appointment/first", "Appointment/late"]
        maintained = await tables(store)
        await rollups.rebuild(store, ZONE)
        assert await tables(store) == maintained

    run(mongo_uri, scenario)


def test_a_burst_of_versions_is_read_once(mongo_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(store: ResourceStore) -> None:
        hour_ago = to_instant(NOW - timedelta(hours=1))
        slots = [
            {
                "resourceType": "Slot",
                "id": f"s{n}",
                "schedule": {"reference": "Schedule/x"},
                "status": "free",
                "start": instant(NOW + timedelta(days=1, minutes=30 * n)),
                "end": instant(NOW + timedelta(days=1, minutes=30 * n + 30)),
            }
            for n in range(30)
        ]
        await insert_first_versions(store, [(s, hour_ago) for s in slots])  # one generation run
        assert await rollups.follow(store, ZONE, page_size=7) == 30
        read: list[int] = []
        versions_from = store.versions_from

        async def counting(rtype: str, at: str, limit: int) -> Any:
            page = await versions_from(rtype, at, limit)
            read.append(len(page))
            return page

        monkeypatch.setattr(store, "versions_from", counting)
        assert await rollups.follow(store, ZONE) == 0
        assert sum(read) == 0, "the burst was read again"

    run(mongo_uri, scenario)


def test_two_runs_at_once_both_end_caught_up(mongo_uri: str) -> None:
    """Two reports follow at the same time: the one that loses a batch's claim goes on
    instead of answering from tables short of the history (each sees every appointment)."""

    async def scenario(store: ResourceStore) -> None:
        await patients(store)
        rng = random.Random(23)
        for n in range(40):
            await store.create(appointment(f"a{n}", rng), rid=f"a{n}")

        async def follow_then_count() -> int:
            await rollups.follow(store, ZONE, page_size=3)  # many batches: claims collide
            items = await ReportStore(store).items_of([f"Appointment/a{n}" for n in range(40)])
            return len(items)

        assert await asyncio.gather(follow_then_count(), follow_then_count()) == [40, 40]
        maintained = await tables(store)
        await rollups.rebuild(store, ZONE)
        assert await tables(store) == maintained

    run(mongo_uri, scenario)
