"""SMART v1 and v2 scope parsing and narrowing."""

from __future__ import annotations

import pytest

from fhir_server.auth.scopes import (
    ScopeSet,
    is_known_scope,
    narrow,
    only_contexts,
    parse_resource_scope,
    plain_words,
)


@pytest.mark.parametrize(
    ("scope", "letters"),
    [
        ("patient/Appointment.read", "rs"),
        ("patient/Appointment.write", "cud"),
        ("patient/Appointment.*", "cruds"),
        ("user/*.rs", "rs"),
        ("system/Slot.cruds", "cruds"),
        ("patient/Patient.r", "r"),
        ("user/Appointment.cu", "cu"),
    ],
)
def test_v1_and_v2_permissions(scope: str, letters: str) -> None:
    parsed = parse_resource_scope(scope)
    assert parsed is not None
    assert parsed.permissions == frozenset(letters)


@pytest.mark.parametrize(
    "scope",
    [
        "patient/Appointment.sr",  # v2 letters out of order
        "patient/Appointment.rr",
        "patient/Appointment.x",
        "patient/Appointment.",
        "doctor/Appointment.rs",
        "patient/appointment.rs",
        "patient/Appointment.rs?",
        "Appointment.read",
        "",
    ],
)
def test_malformed_scopes_are_not_resource_scopes(scope: str) -> None:
    assert parse_resource_scope(scope) is None


def test_query_restriction_is_kept() -> None:
    parsed = parse_resource_scope("patient/Appointment.rs?status=booked&service-type=a%7Cb")
    assert parsed is not None
    assert parsed.params == (("status", "booked"), ("service-type", "a|b"))
    assert parsed.text() == "patient/Appointment.rs?status=booked&service-type=a|b"


def test_known_scopes() -> None:
    assert is_known_scope("launch/patient")
    assert is_known_scope("offline_access")
    assert is_known_scope("patient/Observation.rs?category=laboratory")
    assert not is_known_scope("admin")


def test_scope_set_matching_by_context() -> None:
    scopes = ScopeSet.parse("openid fhirUser patient/Appointment.read user/Slot.rs")
    assert scopes.others == {"openid", "fhirUser"}
    assert [s.context for s in scopes.matching("Appointment", "s")] == ["patient"]
    assert scopes.matching("Appointment", "c") == []
    assert scopes.matching("Slot", "r", ("patient",)) == []
    assert len(scopes.matching("Slot", "r", ("user",))) == 1


def test_narrow_never_widens() -> None:
    granted = narrow(
        ["patient/Appointment.cruds", "patient/Patient.read", "user/Slot.rs", "openid", "launch"],
        ["patient/*.rs", "openid"],
    )
    assert granted == ["patient/Appointment.rs", "patient/Patient.read", "openid"]


def test_narrow_adds_the_allowed_side_restrictions() -> None:
    granted = narrow(["patient/Appointment.rs"], ["patient/Appointment.rs?status=booked"])
    assert granted == ["patient/Appointment.rs?status=booked"]


def test_narrow_keeps_v1_spelling_when_fully_granted() -> None:
    assert narrow(["patient/*.read"], ["patient/*.cruds"]) == ["patient/*.read"]
    assert narrow(["patient/*.write"], ["patient/*.rs"]) == []
    assert narrow(["patient/*.*"], ["patient/*.rs"]) == ["patient/*.rs"]


def test_only_contexts() -> None:
    assert only_contexts(["openid", "user/*.rs", "patient/*.rs"], ("patient",)) == [
        "openid",
        "patient/*.rs",
    ]


def test_plain_words() -> None:
    assert plain_words("patient/Appointment.rs") == "Read, search the patient's Appointment records"
    assert plain_words("user/*.cruds").startswith("Create, read, update, delete, search all the")
    assert "status is booked" in plain_words("patient/Appointment.rs?status=booked")
    assert plain_words("offline_access").startswith("Keep access")


@pytest.mark.parametrize(
    "registered",
    [
        ["patient/*.rs", "patient/Appointment.cruds"],
        ["patient/Appointment.cruds", "patient/*.rs"],
    ],
)
def test_narrow_unites_every_registered_scope_whatever_their_order(registered: list[str]) -> None:
    asked = ["patient/*.rs", "patient/Appointment.cruds"]
    assert narrow(asked, registered) == ["patient/*.rs", "patient/Appointment.cruds"]
    assert narrow(["patient/Appointment.cruds"], registered) == ["patient/Appointment.cruds"]


def test_narrow_keeps_a_restricted_piece_only_when_it_adds_something() -> None:
    allowed = ["patient/Appointment.rs", "patient/Appointment.cruds?status=proposed"]
    assert narrow(["patient/Appointment.cruds"], allowed) == [
        "patient/Appointment.rs",
        "patient/Appointment.cruds?status=proposed",
    ]
    assert narrow(["patient/Appointment.rs"], allowed) == ["patient/Appointment.rs"]


def test_narrow_grants_the_specific_part_of_a_wildcard_request() -> None:
    allowed = ["patient/*.rs", "patient/Appointment.cruds"]
    assert narrow(["patient/*.cruds"], allowed) == ["patient/*.rs", "patient/Appointment.cruds"]
    assert narrow(["patient/*.cruds"], ["patient/Slot.rs"]) == ["patient/Slot.rs"]
    assert narrow(["patient/*.read"], ["patient/Slot.read"]) == ["patient/Slot.rs"]
