"""The access policy: scopes per interaction and the patient compartment (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fhir_server.auth.policy import TokenContext, decide, visible
from fhir_server.auth.scopes import ScopeSet
from fhir_server.fhir.messages import FhirRequest


def ctx(scope: str, patient: str | None = None) -> TokenContext:
    return TokenContext(scopes=ScopeSet.parse(scope), client_id="app", sub="u", patient=patient)


def req(method: str, path: str, body: Any = None, **params: str) -> FhirRequest:
    return FhirRequest(
        method=method,
        path=[p for p in path.split("/") if p],
        params=list(params.items()),
        body=body,
    )


def appointment(*patients: str, rid: str = "a1") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": rid,
        "status": "booked",
        "participant": [
            {"actor": {"reference": f"Patient/{p}"}, "status": "accepted"} for p in patients
        ]
        + [{"actor": {"reference": "Practitioner/dr"}, "status": "accepted"}],
    }


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "Appointment/1", "read"),
        ("GET", "Appointment/1/_history/2", "vread"),
        ("GET", "Appointment/1/_history", "history-instance"),
        ("GET", "Appointment/_history", "history-type"),
        ("GET", "Appointment", "search"),
        ("POST", "Appointment/_search", "search"),
        ("POST", "Appointment", "create"),
        ("PUT", "Appointment/1", "update"),
        ("PATCH", "Appointment/1", "patch"),
        ("DELETE", "Appointment/1", "delete"),
        ("POST", "Appointment/$book", "operation-type"),
        ("POST", "Appointment/1/$cancel", "operation-instance"),
        ("POST", "", "batch"),
        ("GET", "_history", "history-system"),
        ("GET", "StructureDefinition/Patient", "conformance"),
    ],
)
def test_classify(method: str, path: str, kind: str) -> None:
    assert req(method, path).interaction.kind == kind


@pytest.mark.parametrize(
    ("scope", "method", "path", "status"),
    [
        ("user/Appointment.read", "GET", "Appointment/1", 200),
        ("user/Appointment.read", "GET", "Appointment", 200),
        ("user/Appointment.read", "POST", "Appointment", 403),
        ("user/Appointment.write", "GET", "Appointment/1", 403),
        ("user/Appointment.write", "DELETE", "Appointment/1", 200),
        ("user/Appointment.r", "GET", "Appointment", 403),  # v2: search needs s
        ("user/Appointment.s", "GET", "Appointment/1", 403),  # v2: read needs r
        ("user/Appointment.s", "GET", "Appointment", 200),
        ("user/Appointment.c", "PUT", "Appointment/1", 403),
        ("user/Appointment.u", "PATCH", "Appointment/1", 200),
        ("user/Appointment.d", "DELETE", "Appointment/1", 200),
        ("user/Slot.rs", "GET", "Appointment/1", 403),
        ("user/*.rs", "GET", "Slot/1", 200),
        ("system/*.cruds", "PUT", "Schedule/1", 200),
        ("openid fhirUser", "GET", "Patient/1", 403),
    ],
)
def test_scope_per_interaction(scope: str, method: str, path: str, status: int) -> None:
    assert decide(ctx(scope), req(method, path, body={})).status == status


def test_patient_scope_without_patient_context_is_refused() -> None:
    assert decide(ctx("patient/Appointment.rs"), req("GET", "Appointment")).status == 403


def test_patient_search_is_narrowed_to_the_compartment() -> None:
    token = ctx("patient/Appointment.rs", "p1")
    assert decide(token, req("GET", "Appointment")).allowed
    assert ("actor", "Patient/p1") in (token.limits.of("Appointment") or ())
    own = ctx("patient/Patient.rs", "p1")
    assert decide(own, req("GET", "Patient", name="x")).allowed
    assert own.limits.of("Patient") == (("_id", "p1"),)


def test_read_limits_are_shared_by_tokens_of_one_grant_and_only_by_them() -> None:
    """Worked out once per grant in the process: another token (jti, client, subject) of the
    same grant gets the same limits; another patient, role or user never does."""
    scope = "patient/*.rs user/Practitioner.rs"
    first = TokenContext(ScopeSet.parse(scope), "app", sub="u", patient="p1", jti="a")
    again = TokenContext(ScopeSet.parse(scope), "other", sub="v", patient="p1", jti="b")
    assert first.limits is again.limits
    other = TokenContext(ScopeSet.parse(scope), "app", sub="u", patient="p2", jti="a")
    assert other.limits.of("Appointment") == (("actor", "Patient/p2"),)
    assert first.limits.of("Appointment") == (("actor", "Patient/p1"),)
    practitioner = TokenContext(
        ScopeSet.parse("user/Appointment.rs"), "app", fhir_user="Practitioner/dr"
    )
    assert practitioner.limits.of("Appointment") == (("actor", "Practitioner/dr"),)
    acting = replace(practitioner, actors=("PractitionerRole/r1",))
    assert acting.limits.of("Appointment") == (("actor", "PractitionerRole/r1"),)


def test_patient_sees_only_free_slots_and_the_directory() -> None:
    token = ctx("patient/*.rs", "p1")
    assert decide(token, req("GET", "Slot")).allowed
    assert ("status", "free") in (token.limits.of("Slot") or ())
    assert visible(token.limits, {"resourceType": "Slot", "id": "s", "status": "free"})
    assert not visible(token.limits, {"resourceType": "Slot", "id": "s", "status": "busy"})
    assert decide(token, req("GET", "Practitioner/dr")).allowed
    assert visible(token.limits, {"resourceType": "Practitioner", "id": "dr"})


def test_compartment_visibility() -> None:
    token = ctx("patient/Appointment.rs patient/Patient.rs", "p1")
    assert visible(token.limits, appointment("p1"))
    assert not visible(token.limits, appointment("p2"))
    assert visible(token.limits, {"resourceType": "Patient", "id": "p1"})
    assert not visible(token.limits, {"resourceType": "Patient", "id": "p2"})
    assert not visible(token.limits, {"resourceType": "Practitioner", "id": "dr"})  # no scope


def test_user_scope_is_not_limited_to_a_compartment() -> None:
    token = ctx("user/Appointment.rs patient/Appointment.rs", "p1")
    decision = decide(token, req("GET", "Appointment"))
    assert decision.patient is None and token.limits.of("Appointment") == ()
    assert visible(token.limits, appointment("p2"))


def test_patient_cannot_book_for_someone_else() -> None:
    token = ctx("patient/Appointment.cruds", "p1")
    assert decide(token, req("POST", "Appointment", body=appointment("p1"))).allowed
    assert decide(token, req("POST", "Appointment", body=appointment("p2"))).status == 403
    assert decide(token, req("POST", "Appointment", body=appointment("p1", "p2"))).status == 403
    no_patient = {"resourceType": "Appointment", "participant": []}
    assert decide(token, req("POST", "Appointment", body=no_patient)).status == 403


def test_patient_cannot_move_an_appointment_to_someone_else() -> None:
    token = ctx("patient/Appointment.cruds", "p1")
    assert decide(token, req("PUT", "Appointment/a1", body=appointment("p1"))).allowed
    assert decide(token, req("PUT", "Appointment/a1", body=appointment("p2"))).status == 403


def test_patient_operation_body_naming_another_patient_is_refused() -> None:
    token = ctx("patient/Appointment.cruds", "p1")
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/p2"}}],
    }
    assert decide(token, req("POST", "Appointment/$book", body=body)).status == 403
    body["parameter"][0]["valueReference"] = {"reference": "Patient/p1"}
    assert decide(token, req("POST", "Appointment/$book", body=body)).allowed


def test_patient_cannot_change_the_directory_or_use_system_interactions() -> None:
    token = ctx("patient/*.cruds", "p1")
    assert decide(token, req("PUT", "Practitioner/dr", body={})).status == 403
    assert decide(token, req("GET", "_history")).status == 403
    assert decide(token, req("GET", "", _type="Appointment")).status == 403
    assert decide(token, req("GET", "Appointment/_history")).status == 403
    assert decide(token, req("DELETE", "Appointment", status="booked")).status == 403
    assert decide(token, req("POST", "Patient", body={"resourceType": "Patient"})).status == 403


def test_scope_restriction_is_applied_to_searches_and_grants_no_writes() -> None:
    token = ctx("user/Appointment.cruds?status=booked")
    assert decide(token, req("GET", "Appointment")).allowed
    assert token.limits.of("Appointment") == (("status", "booked"),)
    assert "Appointment" in token.limits.scoped
    assert decide(token, req("POST", "Appointment", body={})).status == 403
    read = decide(token, req("GET", "Appointment/1"))
    assert read.allowed and read.scope_params == (("status", "booked"),)


def test_system_search_needs_each_type() -> None:
    assert decide(
        ctx("system/Slot.rs system/Schedule.rs"), req("GET", "", _type="Slot,Schedule")
    ).allowed
    assert decide(ctx("system/Slot.rs"), req("GET", "", _type="Slot,Schedule")).status == 403


def test_conformance_and_batch_envelopes_need_no_scope() -> None:
    assert decide(ctx(""), req("GET", "StructureDefinition/Patient")).allowed
    assert decide(ctx(""), req("POST", "", body={"resourceType": "Bundle"})).allowed
