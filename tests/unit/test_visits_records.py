"""The Encounter and ChargeItems a visit's outcome stands for: valid R4, one id each."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.validation import validate_resource
from fhir_server.visits import billing, records

CODE = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}
SERVICE = {
    "resourceType": "HealthcareService",
    "providedBy": {"reference": "Organization/o1"},
    "type": [{"text": "General practice"}],
    "extension": [{"url": billing.VISIT_CODE, "valueCodeableConcept": CODE}],
}


def appointment(status: str, recorded: str = "2030-01-01T09:05:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": "a1",
        "meta": {"versionId": "2", "lastUpdated": recorded},
        "status": status,
        "start": "2030-01-01T09:00:00Z",
        "end": "2030-01-01T09:30:00Z",
        "participant": [
            {"actor": {"reference": "Patient/p1"}},
            {"actor": {"reference": "PractitionerRole/r1"}},
            {"actor": {"reference": "Location/l1"}},
            {"actor": {"reference": "HealthcareService/s1"}},
        ],
    }


@pytest.mark.parametrize("status", sorted(set(records.ENCOUNTER_STATUS.values())))
def test_every_encounter_and_its_correction_are_valid_r4(status: str) -> None:
    encounter = records.encounter(
        appointment("fulfilled"), status, None, SERVICE, ("Practitioner/d1",)
    )
    validate_resource(encounter)
    voided = records.voided({**encounter, "meta": {"versionId": "1"}})
    assert voided is not None and voided["status"] == "entered-in-error" and "meta" not in voided
    validate_resource(voided)
    assert records.voided(voided) is None  # already in error: nothing to write


def test_charges_are_valid_r4_with_one_id_per_appointment_and_kind() -> None:
    code = billing.billing_code(SERVICE, billing.VISIT)
    assert code == CODE and billing.billing_code(SERVICE, billing.NO_SHOW) is None
    charge = records.charge_item(appointment("fulfilled"), billing.VISIT, CODE, SERVICE)
    validate_resource(charge)
    assert charge["context"] == {"reference": f"Encounter/{records.encounter_id('a1')}"}
    ids = {records.charge_id("a1", c) for c in billing.CHARGES} | {records.encounter_id("a1")}
    assert len(ids) == 3 and records.charge_id("a1", billing.VISIT) == charge["id"]
    assert records.charge_id("a2", billing.VISIT) != charge["id"]


def test_the_period_runs_from_the_arrival_to_when_the_visit_was_recorded_finished() -> None:
    arrived = records.encounter(
        appointment("arrived", "2030-01-01T08:55:00Z"), "arrived", None, None
    )
    assert arrived["period"] == {"start": "2030-01-01T08:55:00Z"}
    finished = records.encounter(appointment("fulfilled"), "finished", arrived, None)
    assert finished["period"] == {"start": "2030-01-01T08:55:00Z", "end": "2030-01-01T09:05:00Z"}
    # Fulfilled without a check-in, recorded before its start: no end before the start.
    early = records.encounter(
        appointment("fulfilled", "2030-01-01T08:00:00Z"), "finished", None, None
    )
    assert early["period"] == {"start": "2030-01-01T09:00:00Z"}
