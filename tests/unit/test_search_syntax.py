"""Parsing search parameters: values in indexed form, and every malformed input refused."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.search_syntax import Criterion, Has, ParsedSearch, Range, SearchParser

BASE = "https://clinic.example/fhir"
PARSER = SearchParser(BASE, default_count=20, max_count=50)


def parse(rtype: str, *params: tuple[str, str]) -> ParsedSearch:
    return PARSER.parse(rtype, list(params))


def only(search: ParsedSearch) -> Criterion:
    (criterion,) = search.criteria
    assert isinstance(criterion, Criterion)
    return criterion


def test_comma_is_or_and_repetition_is_and() -> None:
    search = parse("Patient", ("gender", "male,female"), ("gender", "other"))
    assert [c.values for c in search.criteria if isinstance(c, Criterion)] == [
        ("male", "female"),
        ("other",),
    ]


def test_token_forms_and_escapes() -> None:
    assert only(parse("Patient", ("identifier", "urn:mrn|42"))).values == ("urn:mrn|42",)
    assert only(parse("Patient", ("identifier", "|42"))).values == ("|42",)
    assert only(parse("Patient", ("identifier", "urn:mrn|"))).values == ("urn:mrn|",)
    assert only(parse("Patient", ("identifier", r"a\,b"))).values == ("a,b",)


def test_strings_are_folded_unless_exact() -> None:
    assert only(parse("Patient", ("name", "MÜLLER"))).values == ("muller",)
    assert only(parse("Patient", ("name:exact", "Müller"))).values == ("Müller",)


def test_reference_forms() -> None:
    def value(raw: str, name: str = "patient") -> str:
        return str(only(parse("Appointment", (name, raw))).values[0])

    assert value("Patient/p1") == "Patient/p1"
    assert value(f"{BASE}/Patient/p1") == "Patient/p1"
    assert value(f"{BASE}/Patient/p1/_history/2") == "Patient/p1"
    assert value("p1") == "*/p1"
    assert value("p1", "actor:Practitioner") == "Practitioner/p1"
    assert value("https://elsewhere.example/fhir/Patient/p1") == (
        "https://elsewhere.example/fhir/Patient/p1"
    )


def test_date_prefixes_become_ranges() -> None:
    (value,) = only(parse("Slot", ("start", "ge2026-03"))).values
    assert value == Range("ge", "20260301000000000000", "20260331235959999999")
    (value,) = only(parse("Slot", ("start", "2026-03-05"))).values
    assert isinstance(value, Range) and value.prefix == "eq"


def test_result_parameters() -> None:
    search = parse(
        "Appointment",
        ("_count", "500"),
        ("_sort", "-date,_id"),
        ("_total", "accurate"),
        ("_include", "Appointment:patient"),
        ("_include:iterate", "Patient:general-practitioner"),
        ("_revinclude", "AppointmentResponse:appointment"),
    )
    assert search.count == 50  # capped at the configured maximum
    assert [(k.code, k.descending) for k in search.sort] == [("date", True), ("_id", False)]
    assert search.total == "accurate"
    assert [(i.source_type, i.iterate) for i in search.include] == [
        ("Appointment", False),
        ("Patient", True),
    ]
    assert search.revinclude[0].param is not None
    assert search.revinclude[0].param.code == "appointment"


def test_unknown_parameters_are_listed_not_searched() -> None:
    search = parse("Patient", ("foo", "1"), ("name", "x"), ("_format", "json"))
    assert search.unknown == ["foo"]
    assert search.kept == [("name", "x")]


def test_chains_and_has() -> None:
    criterion = only(parse("Appointment", ("actor:Practitioner.name", "jones")))
    assert [t for t, _ in criterion.chain] == ["Practitioner"]
    # Without a type, every target type that has the parameter is searched.
    criterion = only(parse("Appointment", ("actor.name", "jones")))
    assert {t for t, _ in criterion.chain} >= {"Patient", "Practitioner", "Location"}
    (has,) = parse("Patient", ("_has:Appointment:patient:status", "booked")).criteria
    assert isinstance(has, Has) and has.resource_type == "Appointment"
    (nested,) = parse(
        "Patient",
        ("_has:Appointment:patient:_has:AppointmentResponse:appointment:part-status", "x"),
    ).criteria
    assert isinstance(nested, Has) and isinstance(nested.criterion, Has)


@pytest.mark.parametrize(
    ("rtype", "name", "value"),
    [
        ("Slot", "start", "2026-02-30"),
        ("Slot", "start", "xx2026-03-01"),
        ("Slot", "start", "tomorrow"),
        ("Slot", "start", "ge"),
        ("Appointment", "priority", "high"),
        ("Patient", "name:fuzzy", "x"),
        ("Patient", "gender:missing", "maybe"),
        ("Patient", "gender", "a|b|c"),
        ("Patient", "gender", "a,,b"),
        ("Patient", "birthdate:exact", "2020"),
        ("Appointment", "patient", "Practitioner/1"),
        ("Appointment", "actor:Patient", "Practitioner/1"),
        ("Appointment", "patient", "not a/reference"),
        ("Appointment", "status.name", "x"),
        ("Appointment", "patient.nothing", "x"),
        ("Appointment", "actor:Organization.name", "x"),
        ("Appointment", "patient.general-practitioner.name.x", "x"),
        ("Patient", "_has:Appointment:patient", "x"),
        ("Patient", "_has:Nothing:patient:status", "x"),
        ("Patient", "_has:Appointment:status:status", "x"),
        ("Patient", "_has:Slot:schedule:status", "x"),
        ("Patient", "_has:Appointment:patient:nothing", "x"),
        ("Patient", "_count", "ten"),
        ("Patient", "_count", "-1"),
        ("Patient", "_total", "some"),
        ("Patient", "_sort", "nothing"),
        ("Patient", "_include", "Patient"),
        ("Patient", "_include", "Patient:name"),
        ("Patient", "_include", "Patient:organization:Practitioner"),
        ("Patient", "_include:deep", "Patient:organization"),
        ("Patient", "_revinclude", "Nothing:patient"),
    ],
)
def test_malformed_values_are_400_naming_the_parameter(rtype: str, name: str, value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(rtype, (name, value))
    assert caught.value.status == 400
    assert caught.value.expression == (name,)


def test_conjoin_states_a_repeated_condition_once() -> None:
    """A search repeating its caller's limit (a patient's `status=free` on Slots) must stay
    one plain filter: `$and` sends the embedded server into a Python scan of every row."""
    from fhir_server.store.search_query import conjoin

    free = {"idx.s.status": {"$eq": "free"}}
    assert conjoin(free, {"idx.s.start.lo": {"$gte": "1"}}, free) == {
        "idx.s.status": {"$eq": "free"},
        "idx.s.start.lo": {"$gte": "1"},
    }
    assert conjoin({"a": {"$gte": 1}}, {"a": {"$gte": 1, "$lt": 5}}) == {"a": {"$gte": 1, "$lt": 5}}
    assert conjoin({"_id": "x"}, {"_id": "x"}) == {"_id": "x"}


def test_conjoin_merges_ranges_and_keeps_clashes() -> None:
    from fhir_server.store.search_query import conjoin

    merged = conjoin({"a": {"$gte": 1}}, {"a": {"$lt": 5}}, {"b": 1})
    assert merged == {"a": {"$gte": 1, "$lt": 5}, "b": 1}
    clash = conjoin(
        {"a": {"$gte": 1}}, {"a": {"$gte": 2}}, {"$nor": [{"x": 1}]}, {"$nor": [{"y": 1}]}
    )
    assert clash == {
        "a": {"$gte": 1},
        "$nor": [{"x": 1}],
        "$and": [{"a": {"$gte": 2}}, {"$nor": [{"y": 1}]}],
    }
