"""Who sees a visit's records with auth on: a patient only their own Encounters and
ChargeItems (the R4 patient compartment, through `subject`), a practitioner only the
Encounters they took part in and no charges, the front desk all of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import BASE, auth_app, bearer, mint
from tests.integration.scheduling_setup import hours_from_now, post
from tests.integration.visits_support import (
    billed_clinic,
    booked,
    charges_of,
    search,
    set_status,
    visit_of,
)


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    for app_client in auth_app(settings_factory):
        app_client.headers["Authorization"] = f"Bearer {mint(app_client, 'system/*.cruds')}"
        yield app_client


def _fulfilled(client: TestClient, clinic: dict[str, str], hours: float) -> dict[str, Any]:
    """A fulfilled visit: its Appointment, Encounter, charge and patient reference."""
    appointment = booked(client, clinic, hours_from_now(hours))
    assert set_status(client, appointment["id"], "fulfilled").status_code == 200
    encounter = visit_of(client, appointment["id"])
    charge = charges_of(client, appointment["id"])["99213"]
    return {"encounter": encounter, "charge": charge, "patient": encounter["subject"]["reference"]}


def _ids(client: TestClient, query: str, headers: dict[str, str]) -> list[str]:
    response = client.get(f"{BASE}/{query}", headers=headers)
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["id"] for e in response.json().get("entry", []))


def test_each_token_sees_only_the_visits_it_may(client: TestClient) -> None:
    clinic = billed_clinic(client)
    other_clinic = billed_clinic(client)
    alice = _fulfilled(client, clinic, 3)
    bob = _fulfilled(client, other_clinic, 4)
    alice_id = alice["patient"].split("/")[1]
    as_alice = bearer(mint(client, "patient/*.rs", patient=alice_id, fhir_user=alice["patient"]))
    for rtype, key in (("Encounter", "encounter"), ("ChargeItem", "charge")):
        assert _ids(client, rtype, as_alice) == [alice[key]["id"]]
        assert _ids(client, f"{rtype}?patient={bob['patient']}", as_alice) == []
        own = client.get(f"{BASE}/{rtype}/{alice[key]['id']}", headers=as_alice)
        assert own.status_code == 200 and own.json()["status"] in ("finished", "billable")
        theirs = client.get(f"{BASE}/{rtype}/{bob[key]['id']}", headers=as_alice)
        assert theirs.status_code in (403, 404) and bob["patient"] not in theirs.text
        history = client.get(f"{BASE}/{rtype}/{bob[key]['id']}/_history", headers=as_alice)
        assert history.status_code in (403, 404) and bob["patient"] not in history.text
    written = client.put(
        f"{BASE}/ChargeItem/{alice['charge']['id']}",
        json={**alice["charge"], "status": "not-billable"},
        headers=as_alice | {"Content-Type": "application/fhir+json"},
    )
    assert written.status_code == 403
    assert (
        charges_of(client, alice["encounter"]["appointment"][0]["reference"][12:])["99213"]
        == alice["charge"]
    )

    doctor = f"Practitioner/{clinic['practitioner']}"
    as_doctor = bearer(mint(client, "user/*.rs", fhir_user=doctor, role="practitioner"))
    assert _ids(client, "Encounter", as_doctor) == [alice["encounter"]["id"]]
    assert client.get(f"{BASE}/ChargeItem", headers=as_doctor).status_code == 403

    as_desk = bearer(mint(client, "user/*.rs", role="frontdesk"))
    both = sorted([alice["charge"]["id"], bob["charge"]["id"]])
    patients = f"{alice['patient']},{bob['patient']}"
    assert _ids(client, f"ChargeItem?patient={patients}", as_desk) == both


def test_a_failed_transaction_bundle_records_no_visit(client: TestClient) -> None:
    """The Encounter and charge share the unit of work of the Appointment's change: a
    transaction whose other entry fails leaves neither, and the same one retried bills once.
    (Here, where the front desk's role reaches each entry through the token.)"""
    appt = booked(client, billed_clinic(client), hours_from_now(11))
    doctor = post(client, {"resourceType": "Practitioner", "name": [{"family": "Other"}]})
    fulfilled = {k: v for k, v in appt.items() if k != "meta"} | {"status": "fulfilled"}

    def transaction(doctor_version: str) -> Any:
        entries = [
            {
                "resource": fulfilled,
                "request": {"method": "PUT", "url": f"Appointment/{appt['id']}"},
            },
            {
                "resource": {**doctor, "active": True},
                "request": {
                    "method": "PUT",
                    "url": f"Practitioner/{doctor['id']}",
                    "ifMatch": f'W/"{doctor_version}"',
                },
            },
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        return client.post(BASE, json=bundle, headers={"Content-Type": "application/fhir+json"})

    refused = transaction("7")
    assert refused.status_code == 412, refused.text
    assert client.get(f"{BASE}/Appointment/{appt['id']}").json()["status"] == "booked"
    assert search(client, f"Encounter?appointment=Appointment/{appt['id']}") == []
    for doctor_version in ("1", "2"):  # the same transaction again: no second bill
        assert transaction(doctor_version).status_code == 200
    assert visit_of(client, appt["id"])["status"] == "finished"
    assert [c["meta"]["versionId"] for c in charges_of(client, appt["id"]).values()] == ["1"]
