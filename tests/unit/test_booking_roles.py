"""Who is asking: roles from the token when auth is on, from X-Actor-Role otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.auth.policy import TokenContext
from fhir_server.auth.roles import ROLES
from fhir_server.auth.scopes import ScopeSet
from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.messages import FhirRequest
from fhir_server.rest.scheduling_hooks import caller_of
from fhir_server.scheduling import rules


def request(headers: dict[str, str] | None = None, auth: object = None) -> FhirRequest:
    return FhirRequest("POST", ["Appointment"], headers=headers or {}, auth=auth)  # type: ignore[arg-type]


def test_booking_and_accounts_speak_the_same_four_words() -> None:
    assert rules.ROLES == ROLES


def test_header_role_without_auth_defaults_to_patient() -> None:
    assert caller_of(request()).role == "patient"
    assert caller_of(request({"x-actor-role": "FrontDesk"})).role == "frontdesk"
    with pytest.raises(BadRequest, match="frontdesk"):
        caller_of(request({"x-actor-role": "staff"}))


def token(**claims: Any) -> TokenContext:
    return TokenContext(scopes=ScopeSet.parse("user/*.cruds"), client_id="app", **claims)


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"patient": "p1"}, "patient"),
        ({"fhir_user": "Patient/p1"}, "patient"),
        ({"fhir_user": "Practitioner/d1"}, "practitioner"),
        ({"role": "frontdesk"}, "frontdesk"),
        ({"role": "admin", "fhir_user": "Practitioner/d1"}, "admin"),
        ({}, "frontdesk"),  # a backend service books for the clinic
    ],
)
def test_token_decides_and_the_header_is_ignored(claims: dict[str, Any], role: str) -> None:
    assert caller_of(request({"x-actor-role": "patient"}, auth=token(**claims))).role == role
