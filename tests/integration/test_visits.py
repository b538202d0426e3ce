"""Visits and charges: check-in, outcome and corrections of an Appointment, through the
real API, leave an Encounter and ChargeItems that EHRs and billing systems search."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.integration.scheduling_setup import HEADERS, STAFF, diagnostics, hours_from_now, post
from tests.integration.visits_support import (
    CPT,
    NO_SHOW_CODE,
    PATCH,
    VISIT_CODE,
    billed_clinic,
    booked,
    charges_of,
    search,
    set_status,
    started,
    visit_of,
)


def test_check_in_then_fulfilled_leaves_a_finished_encounter_and_one_billable_charge(
    client: TestClient,
) -> None:
    clinic = billed_clinic(client)
    appt = booked(client, clinic, hours_from_now(3))
    patient = next(p["actor"]["reference"] for p in appt["participant"]
                   if p["actor"]["reference"].startswith("Patient/"))  # fmt: skip
    assert search(client, f"Encounter?appointment=Appointment/{appt['id']}") == []

    arrived = set_status(client, appt["id"], "arrived")
    assert arrived.status_code == 200, arrived.text
    encounter = visit_of(client, appt["id"])
    assert encounter["status"] == "arrived"
    assert encounter["subject"] == {"reference": patient}
    assert encounter["participant"] == [
        {"individual": {"reference": f"PractitionerRole/{clinic['role']}"}},
        {"individual": {"reference": f"Practitioner/{clinic['practitioner']}"}},
    ]
    assert encounter["location"] == [{"location": {"reference": f"Location/{clinic['location']}"}}]
    assert encounter["serviceType"]["coding"][0]["code"] == "394814009"
    assert encounter["serviceProvider"] == {"reference": f"Organization/{clinic['organization']}"}
    assert encounter["period"]["start"] == arrived.json()["meta"]["lastUpdated"]
    assert charges_of(client, appt["id"]) == {}

    # A plain PUT of the whole Appointment records the outcome as well as a PATCH does.
    done = client.put(
        f"/fhir/Appointment/{appt['id']}",
        json={**arrived.json(), "status": "fulfilled"},
        headers=STAFF,
    )
    assert done.status_code == 200, done.text
    finished = visit_of(client, appt["id"])
    assert finished["id"] == encounter["id"] and finished["status"] == "finished"
    assert finished["meta"]["versionId"] == "2"
    assert finished["period"] == {
        "start": encounter["period"]["start"],
        "end": done.json()["meta"]["lastUpdated"],
    }
    charges = charges_of(client, appt["id"])
    assert list(charges) == ["99213"]
    charge = charges["99213"]
    assert charge["status"] == "billable"
    assert charge["code"] == VISIT_CODE
    assert charge["subject"] == {"reference": patient}
    assert charge["performer"] == [{"actor": {"reference": f"PractitionerRole/{clinic['role']}"}}]
    assert charge["occurrenceDateTime"] == appt["start"]
    assert charge["context"] == {"reference": f"Encounter/{encounter['id']}"}
    assert charge["supportingInformation"] == [{"reference": f"Appointment/{appt['id']}"}]
    assert charge["performingOrganization"] == {
        "reference": f"Organization/{clinic['organization']}"
    }
    history = client.get(f"/fhir/Encounter/{encounter['id']}/_history").json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["finished", "arrived"]


def test_a_no_show_is_charged_only_where_the_clinic_configures_a_fee(client: TestClient) -> None:
    with_fee = started(client, billed_clinic(client, no_show=True))
    without = started(client, billed_clinic(client))
    for appt in (with_fee, without):
        response = set_status(client, appt["id"], "noshow")
        assert response.status_code == 200, response.text
        assert visit_of(client, appt["id"])["status"] == "cancelled"
    fee = charges_of(client, with_fee["id"])
    assert list(fee) == ["no-show"] and fee["no-show"]["status"] == "billable"
    assert fee["no-show"]["code"] == NO_SHOW_CODE
    assert charges_of(client, without["id"]) == {}


def test_a_service_without_a_billing_code_is_not_billed(client: TestClient) -> None:
    appt = booked(client, billed_clinic(client, visit=False), hours_from_now(4))
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    assert visit_of(client, appt["id"])["status"] == "finished"
    assert charges_of(client, appt["id"]) == {}


def test_repeating_the_same_write_bills_once(client: TestClient) -> None:
    appt = booked(client, billed_clinic(client), hours_from_now(5))
    first = set_status(client, appt["id"], "fulfilled")
    assert first.status_code == 200, first.text
    url = f"/fhir/Appointment/{appt['id']}"
    for _ in range(2):  # a client retrying its PUT, a PATCH sent twice
        body = {k: v for k, v in first.json().items() if k != "meta"}
        again = client.put(url, json=body, headers=STAFF)
        assert again.status_code == 200, again.text
        assert set_status(client, appt["id"], "fulfilled").status_code == 200
    charges = search(
        client, f"ChargeItem?patient={visit_of(client, appt['id'])['subject']['reference']}"
    )
    assert [(c["status"], c["meta"]["versionId"]) for c in charges] == [("billable", "1")]
    assert visit_of(client, appt["id"])["meta"]["versionId"] == "1"


def test_a_refused_transition_leaves_the_visit_as_it_was(client: TestClient) -> None:
    appt = booked(client, billed_clinic(client), hours_from_now(6))
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    before = (visit_of(client, appt["id"]), charges_of(client, appt["id"]))
    cancel = client.patch(
        f"/fhir/Appointment/{appt['id']}",
        json=[
            {"op": "replace", "path": "/status", "value": "cancelled"},
            {"op": "add", "path": "/cancelationReason", "value": {"text": "Oops"}},
        ],
        headers=PATCH,
    )
    assert cancel.status_code == 409 and "fulfilled cannot become cancelled" in diagnostics(cancel)
    early = set_status(client, appt["id"], "noshow")  # before its start
    assert early.status_code == 409 and "before it starts" in diagnostics(early)
    by_patient = set_status(client, appt["id"], "entered-in-error", **{"x-actor-role": "patient"})
    assert by_patient.status_code == 422 and "front desk" in diagnostics(by_patient)
    assert (visit_of(client, appt["id"]), charges_of(client, appt["id"])) == before


def test_corrections_put_the_charges_in_error_and_follow_the_encounter(client: TestClient) -> None:
    clinic = billed_clinic(client, no_show=True)
    appt = started(client, clinic)
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    assert charges_of(client, appt["id"])["99213"]["status"] == "billable"

    # Recorded as seen by mistake: the patient never came.
    assert set_status(client, appt["id"], "noshow").status_code == 200
    charges = charges_of(client, appt["id"])
    assert charges["99213"]["status"] == "entered-in-error"
    assert charges["no-show"]["status"] == "billable"
    assert visit_of(client, appt["id"])["status"] == "cancelled"

    # The whole Appointment was a mistake.
    assert set_status(client, appt["id"], "entered-in-error").status_code == 200
    charges = charges_of(client, appt["id"])
    assert {c["status"] for c in charges.values()} == {"entered-in-error"}
    assert visit_of(client, appt["id"])["status"] == "entered-in-error"
    history = client.get(f"/fhir/ChargeItem/{charges['99213']['id']}/_history").json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["entered-in-error", "billable"]


def test_an_undone_check_in_puts_the_encounter_in_error_and_a_new_one_starts_afresh(
    client: TestClient,
) -> None:
    appt = booked(client, billed_clinic(client), hours_from_now(7))
    first = set_status(client, appt["id"], "arrived")
    assert set_status(client, appt["id"], "booked").status_code == 200
    assert visit_of(client, appt["id"])["status"] == "entered-in-error"
    time.sleep(1.1)  # a later arrival, at a later second
    again = set_status(client, appt["id"], "arrived")
    assert again.status_code == 200, again.text
    encounter = visit_of(client, appt["id"])
    assert encounter["status"] == "arrived"
    assert encounter["period"]["start"] == again.json()["meta"]["lastUpdated"]
    assert encounter["period"]["start"] != first.json()["meta"]["lastUpdated"]


def test_deleting_a_fulfilled_appointment_puts_its_charge_in_error(client: TestClient) -> None:
    appt = booked(client, billed_clinic(client), hours_from_now(8))
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    deleted = client.delete(f"/fhir/Appointment/{appt['id']}", headers=STAFF)
    assert deleted.status_code == 200, deleted.text
    assert charges_of(client, appt["id"])["99213"]["status"] == "entered-in-error"
    assert visit_of(client, appt["id"])["status"] == "entered-in-error"


def _found(client: TestClient, rtype: str, query: str, patient: str) -> list[str]:
    """Ids the query finds among the patient's (the test database holds other visits)."""
    return [r["id"] for r in search(client, f"{rtype}?{query}&patient={patient}")]


def test_encounters_and_charges_are_found_by_their_r4_search_parameters(
    client: TestClient,
) -> None:
    clinic = billed_clinic(client)
    appt = booked(client, clinic, hours_from_now(9))
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    encounter = visit_of(client, appt["id"])
    patient = encounter["subject"]["reference"]
    day = appt["start"][:10]
    for query in (
        f"patient={patient}",
        f"subject={patient}",
        "status=finished",
        "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB",
        f"practitioner=Practitioner/{clinic['practitioner']}",
        f"participant=PractitionerRole/{clinic['role']}",
        f"location=Location/{clinic['location']}",
        f"service-provider=Organization/{clinic['organization']}",
        f"appointment=Appointment/{appt['id']}",
        f"date=ge{day}",
        f"_id={encounter['id']}",
    ):
        assert _found(client, "Encounter", query, patient) == [encounter["id"]], query
    assert search(client, f"Encounter?patient={patient}&status=arrived") == []
    charge = charges_of(client, appt["id"])["99213"]
    for query in (
        f"patient={patient}",
        f"subject={patient}",
        f"code={CPT}|99213",
        f"context=Encounter/{encounter['id']}",
        f"performer-actor=PractitionerRole/{clinic['role']}",
        f"performing-organization=Organization/{clinic['organization']}",
        f"occurrence=ge{day}",
        f"entered-date=ge{day[:4]}",
    ):
        assert _found(client, "ChargeItem", query, patient) == [charge["id"]], query
    assert search(client, f"ChargeItem?patient={patient}&code={CPT}|99214") == []
    included = client.get(f"/fhir/ChargeItem?_id={charge['id']}&_include=ChargeItem:context")
    kinds = sorted(e["resource"]["resourceType"] for e in included.json()["entry"])
    assert kinds == ["ChargeItem", "Encounter"]


def test_bad_requests_are_operation_outcomes_that_change_nothing(client: TestClient) -> None:
    appt = booked(client, billed_clinic(client), hours_from_now(10))
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    charge = charges_of(client, appt["id"])["99213"]
    assert client.get("/fhir/Encounter/no-such-visit").status_code == 404
    assert client.get("/fhir/ChargeItem?occurrence=not-a-date").status_code == 400
    assert client.get("/fhir/Encounter?status:nonsense=finished").status_code == 400
    unknown = client.patch(
        f"/fhir/Appointment/{appt['id']}",
        json=[{"op": "replace", "path": "/status", "value": "visited"}],
        headers=PATCH,
    )
    assert unknown.status_code in (400, 422), unknown.text
    broken = client.put(
        f"/fhir/ChargeItem/{charge['id']}",
        json={**charge, "status": "paid"},
        headers=HEADERS,
    )
    assert broken.status_code == 422 and "status" in diagnostics(broken)
    assert charges_of(client, appt["id"])["99213"] == charge


def test_an_appointment_without_slots_records_its_visit_too(client: TestClient) -> None:
    """An EHR's own Appointment (no Slot) is written as given, but only the clinic records
    its outcome, and that leaves the same Encounter and charge."""
    clinic = billed_clinic(client)
    patient = post(client, {"resourceType": "Patient", "name": [{"family": "Slotless"}]})
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2031-02-03T10:00:00Z",
        "end": "2031-02-03T10:30:00Z",
        "participant": [
            {"actor": {"reference": f"Patient/{patient['id']}"}, "status": "accepted"},
            {
                "actor": {"reference": f"HealthcareService/{clinic['service']}"},
                "status": "accepted",
            },
        ],
    }
    created = client.post("/fhir/Appointment", json=body, headers=HEADERS)
    assert created.status_code == 201, created.text
    appt = created.json()
    by_patient = set_status(client, appt["id"], "fulfilled", **{"x-actor-role": "patient"})
    assert by_patient.status_code == 422 and "front desk" in diagnostics(by_patient)
    assert search(client, f"Encounter?appointment=Appointment/{appt['id']}") == []
    assert set_status(client, appt["id"], "fulfilled").status_code == 200
    assert visit_of(client, appt["id"])["status"] == "finished"
    assert charges_of(client, appt["id"])["99213"]["status"] == "billable"
    # Anything else about it is still a plain write, with no booking rule.
    moved = client.put(
        f"/fhir/Appointment/{appt['id']}",
        json={**body, "id": appt["id"], "status": "fulfilled", "comment": "Seen early"},
        headers=HEADERS,
    )
    assert moved.status_code == 200, moved.text
    assert charges_of(client, appt["id"])["99213"]["meta"]["versionId"] == "1"
