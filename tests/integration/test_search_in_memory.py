"""Subscription criteria are evaluated on the written resource, in memory: for every kind of
search parameter they must select exactly what the same search selects in the store."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.notifications.criteria import compile_query
from tests.conftest import patient
from tests.integration.search_support import ids, marker, search, tagged

CPT = "http://www.ama-assn.org/go/cpt"
AMB = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}


def _encounter(status: str, who: str, start: str, end: str | None = None) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": AMB,
        "subject": {"reference": who},
        "period": period,
    }


def _charge(code: str, who: str, entered: str, context: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"coding": [{"system": CPT, "code": code}]},
        "subject": {"reference": who},
        "enteredDate": entered,
        "occurrenceDateTime": entered[:10],
        **({"context": {"reference": context}} if context else {}),
    }


@pytest.fixture(scope="module")
def stored(client: TestClient) -> tuple[str, list[dict[str, Any]]]:
    mark = marker()
    first = tagged(client, mark, patient(family="Müller", given="Anna"))["id"]
    second = tagged(client, mark, patient(family="Martin", given="Jo", birthDate="1990-05"))["id"]
    one, two = f"Patient/{first}", f"Patient/{second}"
    visit = tagged(
        client, mark, _encounter("finished", one, "2026-03-05T09:00:00Z", "2026-03-05T09:30:00Z")
    )
    context = f"Encounter/{visit['id']}"
    resources = [
        visit,
        tagged(client, mark, _encounter("arrived", two, "2026-03-06T10:00:00+01:00")),
        tagged(client, mark, _encounter("entered-in-error", one, "2026-04-01")),
        tagged(client, mark, _charge("99213", one, "2026-03-05T09:31:00Z", context)),
        tagged(client, mark, _charge("99214", two, "2026-03-06T11:00:00Z")),
        tagged(client, mark, patient(family="Muller", given="Ann", birthDate="1990-05-31")),
    ]
    people = [client.get(f"/fhir/Patient/{pid}").json() for pid in (first, second)]
    return mark, [*people, *resources]


@pytest.mark.parametrize(
    ("rtype", "query"),
    [
        ("Encounter", "status=finished,arrived"),
        ("Encounter", "status:not=entered-in-error"),
        ("Encounter", "class=AMB"),
        ("Encounter", "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"),
        ("Encounter", "date=2026-03"),
        ("Encounter", "date=ge2026-03-06"),
        ("Encounter", "date=lt2026-03-06T09:30:00Z"),
        ("Encounter", "date=sa2026-03-05"),
        ("Encounter", "date=eb2026-03-06"),
        ("Encounter", "date=ne2026-03-05"),
        ("Encounter", "participant:missing=true"),
        ("ChargeItem", "code=99213"),
        ("ChargeItem", "code=http://www.ama-assn.org/go/cpt|"),
        ("ChargeItem", "entered-date=ge2026-03-06"),
        ("ChargeItem", "occurrence=2026-03-05"),
        ("ChargeItem", "context:missing=false"),
        ("Patient", "name=mull"),
        ("Patient", "family:exact=Müller"),
        ("Patient", "name:contains=ART"),
        ("Patient", "birthdate=1990-05"),
        ("Patient", "birthdate=ap1990-05-30"),
    ],
)
def test_in_memory_criteria_select_what_the_search_selects(
    client: TestClient, stored: tuple[str, list[dict[str, Any]]], rtype: str, query: str
) -> None:
    mark, resources = stored
    found = set(ids(search(client, rtype, query, mark)))
    test = compile_query(rtype, query, client.app.state.services.settings.base_url)  # type: ignore[attr-defined]
    assert found  # every case selects something (and, but for class, not everything)
    assert {r["id"] for r in resources if r["resourceType"] == rtype and test(r)} == found


def test_references_match_by_type_or_bare_id(
    client: TestClient, stored: tuple[str, list[dict[str, Any]]]
) -> None:
    mark, resources = stored
    who = resources[0]["id"]
    base = client.app.state.services.settings.base_url  # type: ignore[attr-defined]
    for query in (f"subject=Patient/{who}", f"patient={who}", f"subject:Patient={who}"):
        found = set(ids(search(client, "ChargeItem", query, mark)))
        test = compile_query("ChargeItem", query, base)
        matched = {r["id"] for r in resources if r["resourceType"] == "ChargeItem" and test(r)}
        assert matched == found and len(found) == 1
