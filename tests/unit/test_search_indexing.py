"""The search parameter table (data) and the `idx` values the indexer writes from it."""

from __future__ import annotations

import pytest

from fhir_server.fhir.indexing import MANY, ResourceIndexer, _unique, has_scalar
from fhir_server.fhir.search_params import search_params

BASE = "https://clinic.example/fhir"
INDEX = ResourceIndexer(BASE)

# The search parameters booking clients rely on, per type.
REQUIRED = {
    "Patient": "_id _lastUpdated identifier name family given birthdate gender telecom email "
    "phone address address-city address-postalcode active general-practitioner organization",
    "PractitionerRole": "practitioner organization location specialty role service active",
    "Location": "name address type organization status",
    "HealthcareService": "name service-type specialty location organization active",
    "Schedule": "actor active date identifier service-type specialty",
    "Slot": "schedule status start service-type specialty appointment-type identifier",
    "Appointment": "actor patient practitioner location date status service-type slot "
    "appointment-type identifier part-status reason-code specialty",
    "AppointmentResponse": "appointment actor patient practitioner part-status",
    "Practitioner": "_id name identifier",
    "Organization": "_id name identifier",
}


@pytest.mark.parametrize("rtype", sorted(REQUIRED))
def test_every_listed_parameter_is_defined(rtype: str) -> None:
    assert set(REQUIRED[rtype].split()) <= set(search_params(rtype))


def test_custom_parameter_from_profiles_search() -> None:
    priority = search_params("Appointment")["priority"]
    assert priority.type == "number"
    assert priority.url.startswith("http://clinic.example/")


def test_single_valued_by_definition() -> None:
    slot = search_params("Slot")
    assert all(has_scalar(slot[c]) for c in ("schedule", "status", "start", "_lastUpdated"))
    assert not has_scalar(slot["service-type"])  # 0..* CodeableConcept
    assert not has_scalar(slot["appointment-type"])  # 0..1 but a CodeableConcept
    appointment = search_params("Appointment")
    assert has_scalar(appointment["date"]) and not has_scalar(appointment["actor"])


def test_tokens_in_every_form() -> None:
    idx = INDEX(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:mrn", "value": "42"}, {"value": "7"}],
            "gender": "female",
            "active": False,
            "communication": [
                {
                    "language": {
                        "coding": [
                            {"system": "urn:ietf:bcp:47", "code": "de", "display": "German"}
                        ],
                        "text": "Deutsch",
                    }
                }
            ],
        }
    )
    assert set(idx["m"]["identifier"]) == {"42", "urn:mrn|42", "urn:mrn|", "7", "|7"}
    assert idx["s"]["active"] == "false"  # Patient.active is 0..1: its scalar copy only
    assert "active" not in idx["m"]
    assert idx["s"]["gender"] == "female"
    assert set(idx["t"]["language"]) == {"german", "deutsch"}


def test_strings_are_folded_and_kept_exactly() -> None:
    idx = INDEX({"resourceType": "Patient", "name": [{"family": "Müller", "given": ["José"]}]})
    assert set(idx["m"]["name"]) == {"muller", "jose"}
    assert set(idx["x"]["name"]) == {"Müller", "José"}
    assert idx["m"]["family"] == ["muller"]


def test_references_are_shortened_and_filtered_by_target() -> None:
    idx = INDEX(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "participant": [
                {"actor": {"reference": f"{BASE}/Patient/p1/_history/3"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/d2"}, "status": "accepted"},
                {"actor": {"reference": "https://other.example/Location/x"}, "status": "accepted"},
            ],
        }
    )
    assert idx["m"]["patient"] == ["Patient/p1"]
    assert idx["m"]["practitioner"] == ["Practitioner/d1", "Practitioner/d2"]
    assert "https://other.example/Location/x" in idx["m"]["actor"]
    # One Patient: its scalar copy; two Practitioners: marked, found through `m`.
    assert idx["u"]["actor"] == {"Patient": "Patient/p1", "Practitioner": MANY}


def test_dates_periods_and_instants() -> None:
    idx = INDEX(
        {
            "resourceType": "Schedule",
            "planningHorizon": {"start": "2026-03"},
            "actor": [{"reference": "Practitioner/d1"}],
        }
    )
    assert idx["s"]["date"] == {"lo": "20260301000000000000", "hi": "99999999999999999999"}
    slot = INDEX(
        {
            "resourceType": "Slot",
            "schedule": {"reference": "Schedule/s1"},
            "status": "free",
            "start": "2026-10-25T02:30:00+02:00",
            "end": "2026-10-25T02:15:00+01:00",
        }
    )
    assert slot["s"]["start"] == {"lo": "20261025003000000000", "hi": "20261025003000999999"}
    assert slot["s"]["schedule"] == "Schedule/s1"


def test_sort_keys_only_for_list_valued_parameters() -> None:
    slot = {
        "resourceType": "Slot",
        "schedule": {"reference": "Schedule/s"},
        "status": "free",
        "specialty": [{"coding": [{"code": "b"}]}, {"coding": [{"code": "a"}]}],
    }
    idx = INDEX(slot)
    assert idx["o"] == {"specialty": "b"}  # the first code; scalars sort on `s`
    assert "start" not in idx["s"]  # absent values are absent, so :missing works


def test_indexes_name_only_scalar_fields_the_indexer_writes() -> None:
    from fhir_server.store.search_query import INDEXES

    for rtype, specs in INDEXES.items():
        params = search_params(rtype)
        for fields in specs:
            for field in fields:
                kind, code, *rest = field.split(".")[1:]
                param = params[code]
                if kind == "s":
                    assert has_scalar(param), field
                    assert rest == (["lo"] if param.type == "date" else []), field
                else:
                    assert kind == "u" and param.type == "reference" and not param.single, field
                    assert rest[0] in param.targets, field


class _Counted:
    """A hashable value that counts how often it is compared for equality."""

    compared = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        _Counted.compared += 1
        return isinstance(other, _Counted) and other.n == self.n


def test_unique_keeps_first_seen_order_and_is_not_quadratic() -> None:
    mixed = ["a", {"lo": 1}, "b", "a", {"lo": 1}, {"lo": 2}, 3, 3.0]
    assert _unique(mixed) == ["a", {"lo": 1}, "b", {"lo": 2}, 3]
    _Counted.compared = 0
    values = [_Counted(n) for n in range(2000)]
    assert len(_unique(values + values[:10])) == 2000
    assert _Counted.compared <= 20  # a list lookup would compare about two million times
