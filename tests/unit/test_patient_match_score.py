"""The pure Patient scorer of `$match`: similarities, weights and grades."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.matching.candidates import blocks, certain, ranked
from fhir_server.matching.score import (
    WEIGHTS,
    assess,
    birth_date_similarity,
    edit_distance,
    name_similarity,
    phone_key,
    telecom_keys,
)

MRN = "urn:oid:1.2.36.146.595.217.0.1"


def person(
    family: str = "Müller",
    given: str = "José",
    born: str = "1980-03-14",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "birthDate": born,
        **extra,
    }


def test_the_weights_add_up_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("smith", "smith", 0), ("smith", "smiht", 1), ("smith", "smyth", 1), ("anna", "hannah", 2)],
)
def test_edit_distance_counts_a_transposition_once(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance


def test_names_are_compared_accent_and_case_folded() -> None:
    assert name_similarity(person(), person("MULLER", "jose")) == 1.0


def test_swapped_names_count_nine_tenths() -> None:
    assert name_similarity(person(), person("José", "Müller")) == pytest.approx(0.9)


def test_a_typo_in_a_name_counts_four_fifths_of_it() -> None:
    assert name_similarity(person(), person("Mueller", "José")) == pytest.approx(0.9)
    assert name_similarity(person(), person("Mulder", "Jose")) == pytest.approx(0.9)
    assert name_similarity(person(), person("Martin", "José")) == pytest.approx(0.5)


def test_short_names_take_no_typo() -> None:
    assert name_similarity(person("Li", "Bo"), person("Lu", "Bo")) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("other", "similarity"),
    [("1980-03-14", 1.0), ("1980-03-15", 0.5), ("1980-04-13", 0.0), ("1981-04-15", 0.0)],
)
def test_birth_dates_allow_one_typed_digit(other: str, similarity: float) -> None:
    assert birth_date_similarity("1980-03-14", other) == similarity


def test_day_and_month_swapped_count_half() -> None:
    assert birth_date_similarity("1980-03-04", "1980-04-03") == 0.5


def test_phones_agree_on_their_last_nine_digits_and_emails_ignore_case() -> None:
    assert phone_key("+33 6 12 34 56 78") == phone_key("06.12.34.56.78") == "612345678"
    assert phone_key("+1 (555) 123-4567") == phone_key("555 123 4567")
    telecom = [{"system": "email", "value": " Jose@Example.ORG "}]
    assert telecom_keys({"telecom": telecom}) == {"jose@example.org"}


def test_a_shared_identifier_is_certain() -> None:
    mrn = [{"system": MRN, "value": "12345"}]
    found = assess(person(identifier=mrn), person("Mueller", identifier=mrn))
    assert found.grade == "certain"
    assert found.score >= 0.9


def test_a_shared_identifier_contradicted_by_the_birth_date_is_only_probable() -> None:
    mrn = [{"system": MRN, "value": "12345"}]
    found = assess(person(identifier=mrn), person(born="1951-11-30", identifier=mrn))
    assert (found.grade, found.score) == ("probable", 0.75)


def test_different_identifiers_of_one_system_are_certainly_not() -> None:
    found = assess(
        person(identifier=[{"system": MRN, "value": "1"}], gender="male"),
        person(identifier=[{"system": MRN, "value": "2"}], gender="male"),
    )
    assert (found.grade, found.score) == ("certainly-not", 0.0)


def test_same_name_birth_date_telecom_and_gender_is_certain_without_identifier() -> None:
    phone = {"telecom": [{"system": "phone", "value": "+33 6 12 34 56 78"}], "gender": "male"}
    local = {"telecom": [{"system": "phone", "value": "06 12 34 56 78"}], "gender": "male"}
    found = assess(person(**phone), person("MULLER", "Jose", **local))
    assert (found.grade, found.score) == ("certain", 0.99)


def test_a_typo_keeps_an_otherwise_identical_record_below_certain() -> None:
    phone = {
        "telecom": [{"system": "phone", "value": "0612345678"}],
        "gender": "male",
        "address": [{"line": ["1 Rue Haute"], "postalCode": "75001"}],
    }
    found = assess(person(**phone), person("Mulller", **phone))
    assert (found.grade, found.score) == ("probable", 0.89)


def test_name_and_birth_date_alone_are_probable_with_gender_possible_without() -> None:
    assert assess(person(gender="male"), person(gender="male")).grade == "probable"
    assert assess(person(), person()) == assess(person(), person())
    assert assess(person(), person()).grade == "possible"


def test_a_name_alone_is_no_match() -> None:
    found = assess(person(born="1980-03-14"), person(born="1999-09-09"))
    assert (found.grade, found.score) == (None, 0.35)


def test_a_sibling_sharing_home_and_phone_is_no_match() -> None:
    home = {
        "telecom": [{"system": "phone", "value": "0612345678"}],
        "address": [{"line": ["1 Rue Haute"], "postalCode": "75001"}],
    }
    found = assess(person(**home), person(given="Ana", born="1984-07-01", **home))
    assert found.grade is None


def test_junk_in_an_unvalidated_body_scores_nothing() -> None:
    junk = {"resourceType": "Patient", "name": "x", "birthDate": 1980, "telecom": [1, {}]}
    assert assess(junk, person()).grade is None


def test_blocks_search_each_identifier_birth_date_name_both_ways_and_telecom() -> None:
    patient = person(
        identifier=[{"system": MRN, "value": "a,b"}],
        telecom=[{"system": "phone", "value": "+1 555 123 4567"}],
    )
    assert blocks(patient) == [
        [("identifier", f"{MRN}|a\\,b")],
        [("birthdate", "1980-03-14")],
        [("family", "Müller"), ("given", "José")],
        [("family", "José"), ("given", "Müller")],
        [("match-telecom", "551234567")],
    ]


def test_letters_unicode_does_not_decompose_are_folded_too() -> None:
    assert name_similarity(person("Łukasiewicz", "Søren"), person("LUKASIEWICZ", "Soren")) == 1.0


def test_ranked_keeps_each_match_once_best_first_and_drops_the_rest() -> None:
    same = person(id="a", gender="male")
    typo = person("Mulder", id="b", gender="male")
    stranger = person("Okafor", "Ada", "2001-01-01", id="c")
    found = ranked(person(gender="male"), [typo, stranger, same, typo])
    assert [c.resource["id"] for c in found] == ["a", "b"]
    assert [c.assessment.grade for c in found] == ["probable", "possible"]
    assert certain(found) == []


def test_blocks_skip_what_is_no_search_value() -> None:
    junk = {"birthDate": "1980-13-45", "name": [{"family": "Solo"}], "identifier": [{"value": "x"}]}
    assert blocks(junk) == []
