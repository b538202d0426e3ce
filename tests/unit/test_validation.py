"""`validate_resource`: what the models miss (bindings, cardinality, invariants, JSON types)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.errors import Unprocessable
from fhir_server.fhir.validation import validate_resource


def _patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Doe"}], "gender": "female", **extra}


def _appointment(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2030-01-07T09:00:00+01:00",
        "end": "2030-01-07T09:30:00+01:00",
        "participant": [{"actor": {"reference": "Patient/p"}, "status": "accepted"}],
        **extra,
    }


def _issues(resource: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    with pytest.raises(Unprocessable) as caught:
        validate_resource(resource)
    return [(issue.code, issue.expression) for issue in caught.value.issues]


def _expressions(resource: dict[str, Any]) -> set[str]:
    return {e for _, expression in _issues(resource) for e in expression}


@pytest.mark.parametrize(
    "resource",
    [
        _patient(),
        _patient(_birthDate={"extension": [{"url": "http://x", "valueString": "?"}]}),
        _patient(deceasedBoolean=False, multipleBirthInteger=2, active=True),
        _patient(telecom=[{"system": "phone", "value": "1", "use": "mobile", "rank": 1}]),
        _patient(name=[{"given": ["A", None], "_given": [None, {"id": "g2"}]}]),
        _appointment(),
        _appointment(status="proposed", start=None, end=None),
        _appointment(status="cancelled", cancelationReason={"text": "ill"}),
        {"resourceType": "Schedule", "actor": [{"reference": "Practitioner/1"}]},
        {"resourceType": "Location", "position": {"longitude": 4.5, "latitude": 52}},
    ],
)
def test_valid_resources_pass(resource: dict[str, Any]) -> None:
    validate_resource({k: v for k, v in resource.items() if v is not None})


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (_patient(gender="bogus"), "Patient.gender"),
        (_patient(name=[{"family": "D", "use": "alias"}]), "Patient.name[0].use"),
        (_patient(telecom=[{"system": "pager-ish", "value": "1"}]), "Patient.telecom[0].system"),
        (_patient(active="yes"), "Patient.active"),
        (_patient(active=1), "Patient.active"),
        (_patient(deceasedBoolean="false"), "Patient.deceasedBoolean"),
        (_patient(multipleBirthInteger="2"), "Patient.multipleBirthInteger"),
        (_patient(multipleBirthInteger=True), "Patient.multipleBirthInteger"),
        (_patient(contact=[{"gender": "male"}]), "Patient.contact[0].name"),
        (_patient(link=[{"type": "seealso"}]), "Patient.link[0].other"),
        (_appointment(status="bogus"), "Appointment.status"),
        (_appointment(participant=[]), "Appointment.participant"),
        (_appointment(participant=[{"status": "accepted"}]), "Appointment.participant[0].actor"),
        (_appointment(end="2030-01-07T08:00:00Z"), "Appointment.end"),
        (_appointment(end="2030-01-07T09:00:00+01:00"), "Appointment.end"),
        (_appointment(start=None, end=None), "Appointment.start"),
        (_appointment(cancelationReason={"text": "ill"}), "Appointment.cancelationReason"),
        ({"resourceType": "Slot", "status": "free"}, "Slot.schedule"),
        ({"resourceType": "Slot", "status": "open", "schedule": {}}, "Slot.status"),
        (_patient(unknown=1), "Patient.unknown"),
        (
            _patient(contact=[{"name": {"family": "K"}, "gender": None}]),
            "Patient.contact[0].gender",
        ),
        (_patient(name=[]), "Patient.name"),
        (_patient(name=[{"family": ""}]), "Patient.name[0].family"),
        (_patient(name=[{"given": ["A", None]}]), "Patient.name[0].given[1]"),
    ],
)
def test_invalid_resources_point_at_the_element(resource: dict[str, Any], expression: str) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    assert expression in _expressions(resource)


def test_end_equal_to_start_in_another_zone_is_caught() -> None:
    same_moment = _appointment(start="2030-01-07T09:00:00+01:00", end="2030-01-07T08:00:00Z")
    assert "Appointment.end" in _expressions(same_moment)


def test_every_issue_has_code_and_expression() -> None:
    issues = _issues(_appointment(status="bogus", participant=[], start="nope"))
    assert issues
    assert all(code and expression for code, expression in issues)


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Appointment", "participant": "x", "status": 5, "start": {}},
        {"resourceType": "Appointment", "participant": [1, "a", None], "status": ["booked"]},
        _patient(name="Doe"),
        _patient(name=[{"use": 5}]),
        _patient(telecom=[1, 2], gender={"code": "female"}),
        _patient(maritalStatus={"coding": "married"}),
        _patient(maritalStatus={"coding": [1, "x"]}),
        _patient(contact=[[]]),
        _patient(meta="v1"),
        {"resourceType": "Slot", "start": 5, "end": [], "schedule": "Schedule/1"},
    ],
)
def test_malformed_shapes_are_reported_not_crashed_on(resource: dict[str, Any]) -> None:
    assert _issues(resource)


def test_top_level_null_is_refused() -> None:
    assert "Patient.active" in _expressions({**_patient(), "active": None})
