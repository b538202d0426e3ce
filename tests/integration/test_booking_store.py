"""The booking's store pieces on the real store: the per-request view and the patient claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.errors import Conflict
from fhir_server.store import patient_claims
from fhir_server.store.patient_claims import Claim
from fhir_server.store.request_store import RequestStore
from fhir_server.store.resources import ResourceStore
from tests.integration.store_support import run


def at(hhmm: str, day: int = 5) -> datetime:
    return datetime.fromisoformat(f"2026-01-{day:02d}T{hhmm}:00").replace(tzinfo=UTC)


def slot(status: str = "free") -> dict[str, Any]:
    return {"resourceType": "Slot", "status": status, "start": "2026-01-05T09:00:00Z"}


def test_request_view_reads_a_row_once_and_still_compare_and_sets(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        stored = await store.create(slot(), rid="s1")
        view = RequestStore(store)
        seen = await view.current("Slot", "s1")
        assert seen is not None and seen.version == 1
        await store.update({**slot("busy"), "id": "s1"})  # another request, meanwhile
        again = await view.current("Slot", "s1")
        assert again is not None and again.version == 1  # read once per request
        with pytest.raises(Conflict):
            async with view.unit_of_work() as work:
                await view.update({**slot("busy-tentative"), "id": "s1"}, uow=work)
        latest = await store.current("Slot", "s1")
        assert latest is not None and latest.version == stored.version + 1
        assert (latest.resource or {})["status"] == "busy"

    run(mongo_uri, scenario)


def test_request_view_inserts_new_rows_at_flush_and_a_taken_id_is_409(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        await store.create(slot(), rid="s1")
        await store.create({"resourceType": "Patient"}, rid="taken")
        view = RequestStore(store)
        async with view.unit_of_work() as work:
            await view.create({"resourceType": "Patient"}, rid="new", uow=work)
            assert await store.current("Patient", "new") is None  # not written yet
            assert (await view.read("Patient", "new")).version == 1  # but seen by the request
            await view.flush(work)
        assert (await store.read("Patient", "new")).version == 1
        assert (await store.vread("Patient", "new", 1)).resource is not None

        view = RequestStore(store)
        with pytest.raises(Conflict):
            async with view.unit_of_work() as work:
                await view.update({**slot("busy"), "id": "s1"}, uow=work)
                await view.create({"resourceType": "Patient"}, rid="taken", uow=work)
                await view.flush(work)
        unchanged = await store.read("Slot", "s1")
        assert unchanged.version == 1 and (unchanged.resource or {})["status"] == "free"

    run(mongo_uri, scenario)


def test_claim_rows_cover_whole_minutes_per_utc_day() -> None:
    short = Claim("Patient/p", "a", at("09:00"), at("09:30"))
    assert [(row, fields[0], fields[-1], len(fields)) for row, fields in short.rows()] == [
        ("Patient/p|20260105", "m0900", "m0929", 30)
    ]
    ragged = Claim("Patient/p", "a", at("23:50") + timedelta(seconds=30), at("00:10", day=6))
    assert [(row, fields[0], fields[-1]) for row, fields in ragged.rows()] == [
        ("Patient/p|20260105", "m2350", "m2359"),
        ("Patient/p|20260106", "m0000", "m0009"),
    ]
    whole_day = Claim("Patient/p", "a", at("00:00"), at("00:00", day=6))
    assert [len(fields) for _, fields in whole_day.rows()] == [720, 720]


def test_overlapping_claims_of_one_patient_conflict_and_releases_free_only_their_own(
    mongo_uri: str,
) -> None:
    async def claim(store: ResourceStore, wanted: Claim) -> bool:
        try:
            async with store.unit_of_work() as work:
                await patient_claims.claim(store, wanted, work)
        except Conflict:
            return False
        return True

    async def scenario(store: ResourceStore) -> None:
        nine = Claim("Patient/p", "a", at("09:00"), at("09:30"))
        assert await claim(store, nine)
        assert await claim(store, Claim("Patient/p", "b", at("09:30"), at("10:00")))
        assert not await claim(store, Claim("Patient/p", "c", at("09:29"), at("09:31")))
        assert not await claim(store, Claim("Patient/p", "d", at("08:00"), at("12:00")))
        assert await claim(store, Claim("Patient/q", "e", at("09:00"), at("09:30")))

        async with store.unit_of_work() as work:  # not its minutes: nothing freed
            await patient_claims.release(
                store, Claim("Patient/p", "c", at("09:00"), at("09:30")), work
            )
        assert not await claim(store, Claim("Patient/p", "f", at("09:10"), at("09:20")))
        async with store.unit_of_work() as work:
            await patient_claims.release(store, nine, work)
        assert await claim(store, Claim("Patient/p", "f", at("09:10"), at("09:20")))

        with pytest.raises(RuntimeError):  # a failed unit of work takes its claim back
            async with store.unit_of_work() as work:
                await patient_claims.claim(
                    store, Claim("Patient/p", "g", at("11:00"), at("11:30")), work
                )
                raise RuntimeError("the booking failed after claiming")
        assert await claim(store, Claim("Patient/p", "h", at("11:00"), at("11:30")))

    run(mongo_uri, scenario)


def test_claims_of_days_gone_by_are_forgotten_and_later_ones_kept(mongo_uri: str) -> None:
    async def scenario(store: ResourceStore) -> None:
        for day, appointment in ((3, "past"), (4, "yesterday"), (5, "today")):
            async with store.unit_of_work() as work:
                wanted = Claim("Patient/p", appointment, at("09:00", day), at("09:30", day))
                await patient_claims.claim(store, wanted, work)
        forgotten = await patient_claims.forget_days_before(store, at("00:00", 4).date())
        rows = store.database.db[patient_claims.COLLECTION]
        kept = sorted([doc["_id"] async for doc in rows.find({})])
        assert forgotten == 1
        assert kept == ["Patient/p|20260104", "Patient/p|20260105"]

    run(mongo_uri, scenario)
