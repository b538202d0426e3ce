"""The Appointment input of $hold/$book (Argonaut and IHE ITI names) and their answer."""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.validation import validate_resource
from fhir_server.rest.bundles_common import bundle, full_url
from fhir_server.rest.operations.parameters import first
from fhir_server.rest.services import Services
from fhir_server.store.resources import Version

# Argonaut Scheduling `appt-resource`, IHE ITI Scheduling `appointment-resource`,
# or the Appointment itself as the body.
RESOURCE_NAMES = ("appt-resource", "appointment-resource", "Appointment")
# A stored Appointment: Argonaut `appt-id` (valueUri, valueUrl or a plain string in a
# query or form) or IHE `appointment-reference` (valueReference).
ID_NAMES = ("appt-id", "appointment-reference")


def appointment_input(found: dict[str, list[Any]], operation: str) -> dict[str, Any] | None:
    """The validated Appointment passed in, if any."""
    resource = first(found, *RESOURCE_NAMES)
    if resource is None:
        return None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
        raise BadRequest(f"{operation} takes an Appointment resource.")
    validate_resource(resource)
    return resource


def referenced_id(value: Any, name: str) -> str | None:
    """An Appointment id from a string, id or Reference input."""
    if value is None:
        return None
    text = str(value.get("reference", "")) if isinstance(value, dict) else str(value)
    kind, _, rid = text.rpartition("/")
    if kind not in ("", "Appointment") and not kind.endswith("/Appointment"):
        raise BadRequest(f"{name} must reference an Appointment.", expression=(name,))
    if not rid:
        raise BadRequest(f"{name} must reference an Appointment.", expression=(name,))
    return rid


def appointment_id_input(found: dict[str, list[Any]]) -> str | None:
    """The id of the stored Appointment named by `appt-id` or `appointment-reference`."""
    for name in ID_NAMES:
        if found.get(name):
            return referenced_id(found[name][0], name)
    return None


def appointment_bundle(services: Services, version: Version) -> dict[str, Any]:
    """Argonaut's answer: a searchset Bundle holding the written Appointment."""
    entry = {
        "fullUrl": full_url(services.base_url, "Appointment", version.id),
        "resource": version.resource,
        "search": {"mode": "match"},
    }
    return bundle("searchset", [entry], total=1)
