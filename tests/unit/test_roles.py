"""The role table (auth.roles), pure: who may do what, and how "their own" is narrowed."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.auth import roles
from fhir_server.auth.policy import TokenContext, decide
from fhir_server.auth.scopes import ScopeSet
from fhir_server.fhir.messages import FhirRequest

DR = "Practitioner/dr"


def token(role: str | None, fhir_user: str | None = None, **kw: Any) -> TokenContext:
    return TokenContext(
        scopes=ScopeSet.parse(kw.pop("scope", "user/*.cruds")),
        client_id="app",
        sub="u",
        fhir_user=fhir_user,
        role=role,
        **kw,
    )


def req(method: str, path: str, body: Any = None) -> FhirRequest:
    return FhirRequest(method=method, path=[p for p in path.split("/") if p], body=body)


def verdict(who: TokenContext, method: str, path: str, body: Any = None) -> roles.Verdict:
    request = req(method, path, body)
    return roles.judge(who, request.interaction, request)


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("practitioner", "DELETE", "Patient/p", False),
        ("practitioner", "GET", "Subscription/s", False),
        ("practitioner", "GET", "Subscription", False),
        ("practitioner", "PUT", "Practitioner/other", False),
        ("practitioner", "PUT", "Practitioner/dr", True),
        ("practitioner", "GET", "Practitioner/other", True),
        ("practitioner", "POST", "Slot", False),
        ("practitioner", "GET", "_history", False),
        ("frontdesk", "POST", "Patient", True),
        ("frontdesk", "DELETE", "Patient/p", False),
        ("frontdesk", "DELETE", "Appointment/a", True),
        ("frontdesk", "PUT", "Schedule/s", False),
        ("frontdesk", "POST", "Schedule/s/$generate-slots", False),
        ("frontdesk", "GET", "Subscription/s", False),
        ("patient", "PUT", "Slot/s", False),
        ("patient", "POST", "Schedule", False),
        ("patient", "GET", "Schedule/s/$generate-slots", False),
        ("patient", "DELETE", "Patient/p", False),
        ("patient", "POST", "Appointment/$hold", True),
        ("admin", "DELETE", "Patient/p", True),
        ("admin", "GET", "Subscription/s", True),
        ("admin", "GET", "_history", True),
        (None, "DELETE", "Patient/p", True),  # a backend service: its scopes decide
        ("janitor", "GET", "Patient/p", False),  # an unknown word grants nothing
    ],
)
def test_the_table(role: str | None, method: str, path: str, allowed: bool) -> None:
    who = token(role, DR if role == "practitioner" else None)
    assert (verdict(who, method, path).refusal is None) is allowed


def test_practitioner_reads_are_narrowed_to_their_own() -> None:
    who = token("practitioner", DR, actors=(DR, "PractitionerRole/r1"))
    mine = "Practitioner/dr,PractitionerRole/r1"
    assert verdict(who, "PUT", "Appointment/a").narrowing == (("actor", mine),)
    assert verdict(who, "PATCH", "Patient/p").narrowing == (
        ("_has:Appointment:patient:actor", mine),
    )
    assert verdict(who, "GET", "Appointment/a").narrowing == ()  # cut by read_limits instead
    assert verdict(who, "GET", "Location").narrowing == ()
    assert verdict(who, "GET", "Appointment/_history").refusal
    limits = who.limits
    assert limits.of("Appointment") == (("actor", mine),)
    assert limits.of("Location") == () and limits.of("Subscription") is None
    assert "Appointment" in limits.scoped and "Location" not in limits.scoped


def test_front_desk_reads_the_clinic_but_no_subscription() -> None:
    limits = token("frontdesk").limits
    assert limits.of("Patient") == () and limits.of("Appointment") == ()
    assert limits.of("Subscription") is None and limits.of("AuditEvent") is None
    assert token("admin").limits.of("Subscription") == ()


def test_practitioner_creates_only_what_names_them() -> None:
    who = token("practitioner", DR)
    mine = {"resourceType": "Appointment", "participant": [{"actor": {"reference": DR}}]}
    other = {"resourceType": "Appointment", "participant": [{"actor": {"reference": "X/y"}}]}
    assert verdict(who, "POST", "Appointment", mine).refusal is None
    assert verdict(who, "POST", "Appointment", other).refusal


def test_the_narrowing_joins_the_scope_decision() -> None:
    who = token("practitioner", DR)
    assert ("actor", DR) in decide(who, req("PUT", "Appointment/a")).scope_params
    assert decide(who, req("DELETE", "Patient/p")).status == 403


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"role": "staff"}, "frontdesk"),
        ({"role": "admin", "fhir_user": "Patient/p"}, "admin"),
        ({"patient": "p"}, "patient"),
        ({"fhir_user": "PractitionerRole/r"}, "practitioner"),
        ({}, None),
    ],
)
def test_role_of_a_token(claims: dict[str, Any], role: str | None) -> None:
    assert roles.role_of(token(claims.pop("role", None), **claims)) == role


PATIENT = {
    "resourceType": "Patient",
    "id": "p",
    "identifier": [{"value": "1"}],
    "name": [{"family": "A"}],
}


def test_patient_protected_fields() -> None:
    me = token("patient", "Patient/p", patient="p")
    assert roles.refused_write(me, {**PATIENT, "name": []}, PATIENT, None) is None
    for field in roles.PATIENT_PROTECTED:
        head, _, tail = field.partition(".")
        value: Any = {tail: ["x"]} if tail else ["x"]
        assert roles.refused_write(me, {**PATIENT, head: value}, PATIENT, None), field
    staff = token("frontdesk")
    assert roles.refused_write(staff, {**PATIENT, "identifier": []}, PATIENT, None) is None


def test_patient_answers_only_for_themselves() -> None:
    me = token("patient", "Patient/p", patient="p")
    old = {
        "resourceType": "Appointment",
        "participant": [
            {"actor": {"reference": "Patient/p"}, "status": "needs-action"},
            {"actor": {"reference": DR}, "status": "needs-action"},
        ],
    }
    mine = {
        **old,
        "participant": [{**old["participant"][0], "status": "accepted"}, old["participant"][1]],
    }
    theirs = {
        **old,
        "participant": [old["participant"][0], {**old["participant"][1], "status": "accepted"}],
    }
    assert roles.refused_write(me, mine, old, None) is None
    assert roles.refused_write(me, theirs, old, None)


def test_a_deleted_id_is_recreated_only_by_its_owner() -> None:
    me = token("patient", "Patient/p", patient="p")
    new = {"resourceType": "Appointment", "participant": [{"actor": {"reference": "Patient/p"}}]}
    other = {"resourceType": "Appointment", "participant": [{"actor": {"reference": "Patient/q"}}]}
    assert roles.refused_write(me, new, None, other)
    assert roles.refused_write(me, new, None, new) is None


def test_a_practitioner_changes_only_their_roles_hours() -> None:
    me = token("practitioner", DR, actors=(DR, "PractitionerRole/r"))
    assert verdict(me, "PUT", "PractitionerRole/r").narrowing == (("practitioner", DR),)
    assert verdict(me, "DELETE", "PractitionerRole/r").refusal
    assert verdict(me, "POST", "PractitionerRole").refusal
    old = {
        "resourceType": "PractitionerRole",
        "id": "r",
        "meta": {"versionId": "3"},
        "practitioner": {"reference": DR},
        "availableTime": [{"daysOfWeek": ["mon"]}],
    }
    hours = {
        **old,
        "meta": {"versionId": "4"},
        "availableTime": [{"daysOfWeek": ["tue"]}],
        "notAvailable": [{"description": "Leave", "during": {"start": "2030-01-01"}}],
    }
    assert roles.refused_write(me, hours, old, None) is None
    moved = {**hours, "practitioner": {"reference": "Practitioner/other"}}
    assert roles.refused_write(me, moved, old, None) == (
        "Only the clinic can change PractitionerRole.practitioner."
    )
    assert roles.refused_write(me, {**hours, "active": False}, old, None)
    assert roles.refused_write(token("admin"), moved, old, None) is None
