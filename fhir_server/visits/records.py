"""The Encounter and ChargeItems an Appointment's recorded outcome stands for (pure).

Ids are derived from the Appointment's id (a name-based UUID), so one Appointment has
exactly one Encounter and at most one ChargeItem of each kind however often its
status is set, corrected or retried: a second create of the same id is a
compare-and-set conflict, never a second bill.

    Appointment status     Encounter        visit charge       no-show fee
    arrived, checked-in    arrived          entered-in-error*  entered-in-error*
    fulfilled              finished         billable           entered-in-error*
    noshow                 cancelled        entered-in-error*  billable (if configured)
    anything else          entered-in-error*                  entered-in-error*

    * only where one already exists (a correction); nothing is created for it.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.resource import Resource
from fhir_server.visits.billing import Charge

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://clinic-booking.example.org/fhir/visits")
_PROVIDERS = ("Practitioner/", "PractitionerRole/")
ENCOUNTER_STATUS = {
    "arrived": "arrived",
    "checked-in": "arrived",
    "fulfilled": "finished",
    "noshow": "cancelled",
}
VOID = "entered-in-error"
_AMBULATORY = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "AMB",
    "display": "ambulatory",
}


def encounter_id(appointment_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"Encounter|Appointment/{appointment_id}"))


def charge_id(appointment_id: str, charge: Charge) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"ChargeItem|{charge.kind}|Appointment/{appointment_id}"))


def actors(appointment: Resource, *prefixes: str) -> list[str]:
    """The participants' references that start with one of `prefixes`, in order."""
    refs = (
        str(p.get("actor", {}).get("reference", "")) for p in appointment.get("participant", [])
    )
    return [ref for ref in refs if ref.startswith(prefixes)]


def recorded_at(appointment: Resource) -> str:
    """When the status was recorded: the Appointment version's lastUpdated (its start if unset)."""
    return str(appointment.get("meta", {}).get("lastUpdated") or appointment["start"])


def _provider(service: Resource | None) -> str | None:
    """The Organization that provides the service (HealthcareService.providedBy)."""
    reference = (service or {}).get("providedBy", {}).get("reference")
    return str(reference) if reference else None


def _period(appointment: Resource, status: str, previous: Resource | None) -> Resource:
    """From the arrival (or the booked start) to when the visit was recorded as finished."""
    at = recorded_at(appointment)
    earlier = (previous or {}).get("period", {}).get("start")
    start = earlier or (at if status == "arrived" else appointment.get("start", at))
    period = {"start": start}
    if status == "finished" and parse_instant(at) >= parse_instant(start):
        period["end"] = at
    return period


def encounter(
    appointment: Resource,
    status: str,
    previous: Resource | None,
    service: Resource | None,
    practitioners: tuple[str, ...] = (),
) -> Resource:
    """The Appointment's Encounter in `status`, keeping what `previous` (its stored version)
    recorded of the arrival. `practitioners` are the Practitioners behind its PractitionerRole
    participants, named too so that `Encounter?practitioner=` finds the visit."""
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": encounter_id(appointment["id"]),
        "status": status,
        "class": _AMBULATORY,
        "subject": {"reference": actors(appointment, "Patient/")[0]},
        "appointment": [{"reference": f"Appointment/{appointment['id']}"}],
        "period": _period(appointment, status, previous),
    }
    service_type = (appointment.get("serviceType") or (service or {}).get("type") or [None])[0]
    if service_type:
        body["serviceType"] = service_type
    providers = dict.fromkeys([*actors(appointment, *_PROVIDERS), *practitioners])
    if providers:
        body["participant"] = [{"individual": {"reference": ref}} for ref in providers]
    locations = actors(appointment, "Location/")
    if locations:
        body["location"] = [{"location": {"reference": ref}} for ref in locations]
    if provider := _provider(service):
        body["serviceProvider"] = {"reference": provider}
    return body


def charge_item(
    appointment: Resource, charge: Charge, code: Resource, service: Resource | None
) -> Resource:
    """A billable ChargeItem of `charge` for the Appointment's visit, coded `code`."""
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": charge_id(appointment["id"], charge),
        "status": "billable",
        "code": code,
        "subject": {"reference": actors(appointment, "Patient/")[0]},
        "context": {"reference": f"Encounter/{encounter_id(appointment['id'])}"},
        "occurrenceDateTime": appointment.get("start") or recorded_at(appointment),
        "enteredDate": recorded_at(appointment),
        "quantity": {"value": 1},
        "supportingInformation": [{"reference": f"Appointment/{appointment['id']}"}],
    }
    providers = actors(appointment, *_PROVIDERS)
    if providers:
        body["performer"] = [{"actor": {"reference": providers[0]}}]
    if provider := _provider(service):
        body["performingOrganization"] = {"reference": provider}
    return body


def voided(stored: Resource) -> Resource | None:
    """The stored Encounter or ChargeItem marked entered-in-error; None when it already is."""
    if stored.get("status") == VOID:
        return None
    return {**{k: v for k, v in stored.items() if k != "meta"}, "status": VOID}
