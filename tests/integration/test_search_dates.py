"""Date and number searches: every prefix, partial dates as ranges, instants and Periods in UTC."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import patient
from tests.integration.rest_support import assert_outcome
from tests.integration.search_support import ids, marker, search, tagged


@pytest.fixture(scope="module")
def births(client: TestClient) -> tuple[str, dict[str, str]]:
    """Patients born on the edges of May 1990, and with partial birth dates."""
    mark = marker()
    born = {}
    for label, date in (
        ("apr30", "1990-04-30"),
        ("may1", "1990-05-01"),
        ("may", "1990-05"),
        ("year", "1990"),
        ("may31", "1990-05-31"),
    ):
        born[label] = tagged(client, mark, patient(birthDate=date))["id"]
    return mark, born


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1990-05", {"may1", "may", "may31"}),  # eq: the target lies within May
        ("eq1990-05-01", {"may1"}),
        ("1990", {"apr30", "may1", "may", "year", "may31"}),
        ("ne1990-05", {"apr30", "year"}),
        ("ge1990-05-01", {"may1", "may", "year", "may31"}),
        ("gt1990-04-30", {"may1", "may", "year", "may31"}),
        ("lt1990-05-01", {"apr30", "year"}),
        ("le1990-04-30", {"apr30", "year"}),
        ("sa1990-04-30", {"may1", "may", "may31"}),
        ("eb1990-05-01", {"apr30"}),
        ("gt1990-05", {"year"}),
        ("1990-05-01,1990-04-30", {"may1", "apr30"}),
    ],
)
def test_partial_date_edges(
    client: TestClient, births: tuple[str, dict[str, str]], query: str, expected: set[str]
) -> None:
    mark, born = births
    found = set(ids(search(client, "Patient", f"birthdate={query}", mark)))
    assert found == {born[k] for k in expected}


def test_repeated_dates_are_and(client: TestClient, births: tuple[str, dict[str, str]]) -> None:
    mark, born = births
    found = set(
        ids(search(client, "Patient", "birthdate=ge1990-05-01&birthdate=le1990-05-15", mark))
    )
    # "may" (the whole month) reaches past the 15th from below: le needs lo <= the 15th, true.
    assert found == {born["may1"], born["may"], born["year"]}


def _appointment(start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": start,
        "end": end,
        "participant": [{"actor": {"reference": "Practitioner/dst"}, "status": "accepted"}],
        **extra,
    }


def test_instants_across_dst_compare_in_utc(client: TestClient) -> None:
    """Europe switches to summer time at 01:00 UTC on 2026-03-29."""
    mark = marker()
    before = tagged(
        client, mark, _appointment("2026-03-29T01:30:00+01:00", "2026-03-29T03:15:00+02:00")
    )["id"]  # 00:30Z
    after = tagged(
        client, mark, _appointment("2026-03-29T03:30:00+02:00", "2026-03-29T03:45:00+02:00")
    )["id"]  # 01:30Z
    west = tagged(client, mark, _appointment("2026-03-28T23:30:00-01:00", "2026-03-29T00:45:00Z"))[
        "id"
    ]  # 00:30Z on the 29th although the local date is the 28th
    east = tagged(
        client, mark, _appointment("2026-03-29T00:30:00+02:00", "2026-03-29T00:45:00+02:00")
    )["id"]  # 22:30Z on the 28th although the local date is the 29th

    def found(query: str) -> set[str]:
        return set(ids(search(client, "Appointment", query, mark)))

    assert found("date=2026-03-29") == {before, after, west}
    assert found("date=2026-03-28") == {east}
    assert found("date=lt2026-03-29T01:00:00Z") == {before, west, east}
    assert found("date=ge2026-03-29T02:00:00%2B01:00") == {after}
    assert found("date=2026-03-29T03:30:00%2B02:00") == {after}
    assert found("date=gt2026-03-29T00:30:00Z") == {after}
    assert found("date=ge2026-03-29T00:30:00Z&date=lt2026-03-29T01:30:00Z") == {before, west}
    assert found("date=ne2026-03-29") == {east}
    assert found("date=ap2026-03-29T01:00:00Z") >= {before, after, west}


def test_sub_second_bounds(client: TestClient) -> None:
    mark = marker()
    whole = tagged(client, mark, _appointment("2026-05-01T10:00:00Z", "2026-05-01T10:30:00Z"))
    # A start given to the second covers that whole second: it reaches past 10:00:00.5
    # (ge, gt match) but does not start after it (sa) nor lie within a 0.1 s value (eq).
    for prefix, matched in (("ge", True), ("gt", True), ("sa", False), ("eq", False)):
        query = f"date={prefix}2026-05-01T10:00:00.5Z"
        assert ids(search(client, "Appointment", query, mark)) == ([whole["id"]] if matched else [])
    assert ids(search(client, "Appointment", "date=eb2026-05-01T10:00:01Z", mark)) == [whole["id"]]


def test_periods_are_ranges(client: TestClient) -> None:
    mark = marker()

    def schedule(horizon: dict[str, str]) -> str:
        body = {
            "resourceType": "Schedule",
            "actor": [{"reference": "Practitioner/p"}],
            "planningHorizon": horizon,
        }
        return str(tagged(client, mark, body)["id"])

    march = schedule({"start": "2026-03-01", "end": "2026-03-31"})
    open_ended = schedule({"start": "2026-04-01T00:00:00Z"})

    def found(query: str) -> set[str]:
        return set(ids(search(client, "Schedule", query, mark)))

    assert found("date=2026-03") == {march}
    assert found("date=2026-03-15") == set()  # the horizon is not within that one day
    assert found("date=ge2026-03-15") == {march, open_ended}
    assert found("date=ge2030-01-01") == {open_ended}
    assert found("date=lt2026-04-01") == {march}
    assert found("date=sa2026-03-31") == {open_ended}


def test_last_updated_and_missing(client: TestClient) -> None:
    mark = marker()
    created = tagged(client, mark, patient())
    dateless = tagged(client, mark, {"resourceType": "Patient", "name": [{"family": "Z"}]})
    stamp = created["meta"]["lastUpdated"]
    assert created["id"] in ids(search(client, "Patient", f"_lastUpdated=ge{stamp}", mark))
    assert ids(search(client, "Patient", "_lastUpdated=lt2000-01-01", mark)) == []
    assert ids(search(client, "Patient", "birthdate:missing=true", mark)) == [dateless["id"]]
    assert ids(search(client, "Patient", "birthdate:missing=false", mark)) == [created["id"]]
    # ne is "has a value other than": a Patient without a birth date is not found.
    assert ids(search(client, "Patient", "birthdate=ne2000", mark)) == [created["id"]]


def test_number_prefixes_on_custom_parameter(client: TestClient) -> None:
    mark = marker()
    found = {
        n: tagged(
            client,
            mark,
            _appointment("2026-06-01T10:00:00Z", "2026-06-01T10:30:00Z", priority=n),
        )["id"]
        for n in (0, 5, 10)
    }

    def query(value: str) -> set[str]:
        return set(ids(search(client, "Appointment", f"priority={value}", mark)))

    assert query("5") == {found[5]}
    assert query("5.0") == {found[5]}
    assert query("gt5") == {found[10]}
    assert query("le5") == {found[0], found[5]}
    assert query("ne5") == {found[0], found[10]}
    assert query("5,10") == {found[5], found[10]}
    assert query("1e1") == {found[5], found[10]}  # one significant digit: [5, 15]


@pytest.mark.parametrize(
    "query",
    [
        "birthdate=1990-02-30",
        "birthdate=xx1990",
        "birthdate=1990-5",
        "birthdate=ge",
        "_lastUpdated=now",
    ],
)
def test_malformed_dates_are_400(client: TestClient, query: str) -> None:
    response = client.get(f"/fhir/Patient?{query}")
    assert_outcome(response, 400, query.split("=")[0])
