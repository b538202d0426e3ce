"""Reference searches: forms of the value, :Type, chains, _has, _include/_revinclude (:iterate)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BASE, patient
from tests.integration.rest_support import assert_outcome
from tests.integration.search_support import ids, link, marker, search, tagged


def _practitioner(family: str) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "name": [{"family": family, "given": ["Dr"]}]}


def _appointment(*actors: str, start: str = "2026-02-02T09:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": start,
        "end": start.replace("09:00", "09:30"),
        "participant": [{"actor": {"reference": a}, "status": "accepted"} for a in actors],
    }


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, str]:
    """Two patients, two practitioners (one with a namesake Patient), appointments between them."""
    mark = marker()
    w = {"mark": mark}
    w["smith"] = tagged(client, mark, patient("Smith", "Ann"))["id"]
    w["jones_patient"] = tagged(client, mark, patient("Jones", "Pat"))["id"]
    w["jones"] = tagged(client, mark, _practitioner("Jones"))["id"]
    w["brown"] = tagged(client, mark, _practitioner("Brown"))["id"]
    w["a_smith_jones"] = tagged(
        client, mark, _appointment(f"Patient/{w['smith']}", f"Practitioner/{w['jones']}")
    )["id"]
    w["a_smith_brown"] = tagged(
        client,
        mark,
        _appointment(
            f"Patient/{w['smith']}",
            f"Practitioner/{w['brown']}",
            f"Practitioner/{w['jones']}",
            start="2026-02-03T09:00:00Z",
        ),
    )["id"]
    w["a_jones_brown"] = tagged(
        client,
        mark,
        _appointment(f"Patient/{w['jones_patient']}", f"Practitioner/{w['brown']}"),
    )["id"]
    return w


def _found(client: TestClient, world: dict[str, str], rtype: str, query: str) -> set[str]:
    return set(ids(search(client, rtype, query, world["mark"])))


def test_reference_value_forms(client: TestClient, world: dict[str, str]) -> None:
    smith = world["smith"]
    expected = {world["a_smith_jones"], world["a_smith_brown"]}
    for value in (f"Patient/{smith}", smith, f"{BASE}/Patient/{smith}"):
        assert _found(client, world, "Appointment", f"patient={value}") == expected
    assert _found(client, world, "Appointment", f"actor:Patient={smith}") == expected
    # The same id as a Practitioner matches nothing.
    assert _found(client, world, "Appointment", f"actor:Practitioner={smith}") == set()


def test_multi_valued_reference_with_several_of_one_type(
    client: TestClient, world: dict[str, str]
) -> None:
    """a_smith_brown has two Practitioners: found through the array, not the scalar copy."""
    jones = world["jones"]
    assert _found(client, world, "Appointment", f"practitioner={jones}") == {
        world["a_smith_jones"],
        world["a_smith_brown"],
    }
    assert _found(client, world, "Appointment", f"actor=Practitioner/{world['brown']}") == {
        world["a_smith_brown"],
        world["a_jones_brown"],
    }
    both = f"actor=Practitioner/{jones}&actor=Practitioner/{world['brown']}"
    assert _found(client, world, "Appointment", both) == {world["a_smith_brown"]}
    either = f"actor=Practitioner/{jones},Patient/{world['jones_patient']}"
    assert _found(client, world, "Appointment", either) == {
        world["a_smith_jones"],
        world["a_smith_brown"],
        world["a_jones_brown"],
    }


def test_reference_and_date_together(client: TestClient, world: dict[str, str]) -> None:
    query = f"patient={world['smith']}&date=ge2026-02-03"
    assert _found(client, world, "Appointment", query) == {world["a_smith_brown"]}
    query = f"actor=Practitioner/{world['jones']}&date=lt2026-02-03"
    assert _found(client, world, "Appointment", query) == {world["a_smith_jones"]}


def test_chained_parameters(client: TestClient, world: dict[str, str]) -> None:
    assert _found(client, world, "Appointment", "patient.name=smith") == {
        world["a_smith_jones"],
        world["a_smith_brown"],
    }
    # "Jones" is a Practitioner and a Patient: the :Type modifier picks one.
    assert _found(client, world, "Appointment", "actor:Practitioner.name=jones") == {
        world["a_smith_jones"],
        world["a_smith_brown"],
    }
    assert _found(client, world, "Appointment", "actor:Patient.name=jones") == {
        world["a_jones_brown"]
    }
    assert _found(client, world, "Appointment", "actor.family=jones") == {
        world["a_smith_jones"],
        world["a_smith_brown"],
        world["a_jones_brown"],
    }
    assert _found(client, world, "Appointment", "patient.name=nobody") == set()


def test_reverse_chaining_has(client: TestClient, world: dict[str, str]) -> None:
    query = f"_has:Appointment:patient:actor=Practitioner/{world['jones']}"
    assert _found(client, world, "Patient", query) == {world["smith"]}
    query = f"_has:Appointment:practitioner:patient={world['jones_patient']}"
    assert _found(client, world, "Practitioner", query) == {world["brown"]}
    assert _found(client, world, "Patient", "_has:Appointment:patient:status=cancelled") == set()


def test_include_and_revinclude(client: TestClient, world: dict[str, str]) -> None:
    query = f"_id={world['a_smith_jones']}&_include=Appointment:patient"
    bundle = search(client, "Appointment", query, world["mark"])
    modes = {e["resource"]["id"]: e["search"]["mode"] for e in bundle["entry"]}
    assert modes == {world["a_smith_jones"]: "match", world["smith"]: "include"}
    query = f"_id={world['a_smith_jones']}&_include=Appointment:actor:Practitioner"
    included = set(ids(search(client, "Appointment", query, world["mark"]), "include"))
    assert included == {world["jones"]}
    query = f"_id={world['brown']}&_revinclude=Appointment:practitioner"
    bundle = search(client, "Practitioner", query, world["mark"])
    assert ids(bundle) == [world["brown"]]
    assert set(ids(bundle, "include")) == {world["a_smith_brown"], world["a_jones_brown"]}


def test_revinclude_target_type_follows_only_that_type(
    client: TestClient, world: dict[str, str]
) -> None:
    """`_revinclude=Source:param:Type` adds what points at the Type's resources only."""
    query = f"_id={world['a_jones_brown']}&_include=Appointment:actor"
    people = {world["jones_patient"], world["brown"]}
    patients = f"{query}&_revinclude:iterate=Appointment:actor:Patient"
    assert set(ids(search(client, "Appointment", patients, world["mark"]), "include")) == people
    doctors = f"{query}&_revinclude:iterate=Appointment:actor:Practitioner"
    found = set(ids(search(client, "Appointment", doctors, world["mark"]), "include"))
    assert found == people | {world["a_smith_brown"]}


def test_include_iterate(client: TestClient, world: dict[str, str]) -> None:
    mark = marker()
    practitioner = tagged(client, mark, _practitioner("Gp"))["id"]
    person = tagged(
        client,
        mark,
        patient("Iter", generalPractitioner=[{"reference": f"Practitioner/{practitioner}"}]),
    )["id"]
    appointment = tagged(client, mark, _appointment(f"Patient/{person}"))["id"]
    plain = "_include=Appointment:patient&_include=Patient:general-practitioner"
    assert set(ids(search(client, "Appointment", plain, mark), "include")) == {person}
    iterate = "_include=Appointment:patient&_include:iterate=Patient:general-practitioner"
    bundle = search(client, "Appointment", iterate, mark)
    assert ids(bundle) == [appointment]
    assert set(ids(bundle, "include")) == {person, practitioner}
    wildcard = search(client, "Appointment", "_include=*", mark)
    assert set(ids(wildcard, "include")) == {person}


def test_reference_missing(client: TestClient) -> None:
    mark = marker()
    with_org = tagged(client, mark, patient(managingOrganization={"reference": "Organization/o"}))
    without = tagged(client, mark, patient())
    assert ids(search(client, "Patient", "organization:missing=false", mark)) == [with_org["id"]]
    assert ids(search(client, "Patient", "organization:missing=true", mark)) == [without["id"]]


def test_deleted_resources_are_not_found(client: TestClient) -> None:
    mark = marker()
    gone = tagged(client, mark, patient("Gone"))["id"]
    assert client.delete(f"/fhir/Patient/{gone}").status_code == 200
    assert ids(search(client, "Patient", "name=gone", mark)) == []
    assert ids(search(client, "Patient", f"_id={gone}")) == []
    assert ids(search(client, "Patient", "gender:missing=true", mark)) == []


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status.name=x", "status.name"),
        ("patient.nothing=x", "patient.nothing"),
        ("actor:Organization.name=x", "actor:Organization.name"),
        ("patient=Practitioner/1", "patient"),
        ("_has:Appointment:patient=x", "_has:Appointment:patient"),
        ("patient.birthdate=notadate", "patient.birthdate"),
    ],
)
def test_bad_chains_are_400(client: TestClient, query: str, name: str) -> None:
    assert_outcome(client.get(f"/fhir/Appointment?{query}"), 400, name)


def test_branches_merge_in_sort_order_across_pages(
    client: TestClient, world: dict[str, str]
) -> None:
    """Brown is the sole Practitioner of one appointment and one of two in another: the two
    are found by different indexed queries, merged in `_sort` order, and paged by keyset."""
    query = f"actor=Practitioner/{world['brown']}&_sort=-date&_count=1"
    bundle = search(client, "Appointment", query, world["mark"])
    seen = ids(bundle)
    while (url := link(bundle, "next")) is not None:
        bundle = client.get(url.replace("http://testserver", "")).json()
        seen += ids(bundle)
    assert seen == [world["a_smith_brown"], world["a_jones_brown"]]  # 3 Feb, then 2 Feb
    ascending = search(client, "Appointment", query.replace("-date", "date"), world["mark"])
    assert ids(ascending) == [world["a_jones_brown"]]


def test_slot_schedule_includes_and_chain(client: TestClient) -> None:
    mark = marker()
    doctor = tagged(client, mark, _practitioner("Slotdoc"))["id"]
    schedule = tagged(
        client,
        mark,
        {"resourceType": "Schedule", "actor": [{"reference": f"Practitioner/{doctor}"}]},
    )["id"]
    other = tagged(
        client, mark, {"resourceType": "Schedule", "actor": [{"reference": "Practitioner/x"}]}
    )["id"]

    def slot(schedule_id: str) -> str:
        body = {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{schedule_id}"},
            "status": "free",
            "start": "2026-04-01T09:00:00Z",
            "end": "2026-04-01T09:30:00Z",
        }
        return str(tagged(client, mark, body)["id"])

    mine, theirs = slot(schedule), slot(other)
    assert ids(search(client, "Slot", f"schedule.actor=Practitioner/{doctor}", mark)) == [mine]
    assert ids(search(client, "Slot", "schedule.actor:Practitioner.name=slotdoc", mark)) == [mine]
    query = f"_id={mine}&_include=Slot:schedule&_include:iterate=Schedule:actor"
    assert set(ids(search(client, "Slot", query, mark), "include")) == {schedule, doctor}
    query = f"_id={schedule}&_revinclude=Slot:schedule"
    assert set(ids(search(client, "Schedule", query, mark), "include")) == {mine}
    query = f"_id={doctor}&_revinclude=Schedule:actor&_revinclude:iterate=Slot:schedule"
    bundle = search(client, "Practitioner", query, mark)
    assert set(ids(bundle, "include")) == {schedule, mine}
    assert theirs not in ids(bundle, "include")
