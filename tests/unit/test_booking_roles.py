"""Who is asking: roles from the token when auth is on, from X-Actor-Role otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.rest.messages import FhirRequest
from fhir_server.rest.scheduling_hooks import caller_of


def request(headers: dict[str, str] | None = None, auth: object = None) -> FhirRequest:
    return FhirRequest("POST", ["Appointment"], headers=headers or {}, auth=auth)


def test_header_role_without_auth_defaults_to_patient() -> None:
    assert caller_of(request()).role == "patient"
    assert caller_of(request({"x-actor-role": "Staff"})).role == "staff"
    with pytest.raises(BadRequest):
        caller_of(request({"x-actor-role": "admin"}))


@pytest.mark.parametrize(
    ("token", "role"),
    [
        (SimpleNamespace(patient="p1", fhir_user=None), "patient"),
        (SimpleNamespace(patient=None, fhir_user="Patient/p1"), "patient"),
        (SimpleNamespace(patient=None, fhir_user="Practitioner/d1"), "practitioner"),
        (SimpleNamespace(patient=None, fhir_user=None), "staff"),
    ],
)
def test_token_decides_and_the_header_is_ignored(token: object, role: str) -> None:
    assert caller_of(request({"x-actor-role": "staff"}, auth=token)).role == role
