"""AuditEvent resources for FHIR REST interactions (pure: no I/O).

One event per interaction, in the codes of the FHIR R4 AuditEvent and the
IHE Basic Audit Log Patterns:

- `type` is `audit-event-type|rest`; `subtype` the `restful-interaction`
  code (read, vread, search-type, history-instance, create, update, patch,
  delete, operation, batch, transaction, ...), and for an operation also its
  name in this server's `urn:fhir-server:operation` system.
- `action`: C create, R read/search/history, U update/patch, D delete,
  E operations and Bundles.
- `outcome`: 0 answered, 4 refused or invalid (a 4xx answer, denials
  included), 8 failed on the server (5xx).
- `agent`: the requestor (the token's fhirUser, user name as `altId`, role,
  network address) and the client application that holds the token.
- `entity`: every resource the interaction named, changed or returned
  (`Type/id`, role 4 domain resource), each patient those resources belong
  to (role 1 patient), so "who saw this patient's data" is one indexed
  search on `entity`, and a search's query (role 24, base64 as R4 wants).
  A refused request names the stored resources the gate withheld and their
  patients too (`audit.trail.Withholding`): an attempt is found the same way.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
OPERATION = "urn:fhir-server:operation"
ROLE = "urn:fhir-server:role"
CLIENT = "urn:fhir-server:client"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

# Interaction kind (`auth.policy.classify`) -> (restful-interaction code, action).
_KINDS: dict[str, tuple[str, str]] = {
    "read": ("read", "R"),
    "vread": ("vread", "R"),
    "search": ("search-type", "R"),
    "search-system": ("search-system", "R"),
    "history-instance": ("history-instance", "R"),
    "history-type": ("history-type", "R"),
    "history-system": ("history-system", "R"),
    "create": ("create", "C"),
    "update": ("update", "U"),
    "patch": ("patch", "U"),
    "delete": ("delete", "D"),
    "operation-system": ("operation", "E"),
    "operation-type": ("operation", "E"),
    "operation-instance": ("operation", "E"),
    "batch": ("batch", "E"),
}
_PATIENT_ENTITY = {
    "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
    "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
}
_RESOURCE_ENTITY = {
    "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
    "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
}
_QUERY_ENTITY = {
    "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
    "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
}
SOURCE = {
    "observer": {"display": "fhir-server"},
    "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
}


@dataclass(frozen=True)
class Actor:
    """Who asked: from the access token, and the address the request came from."""

    user: str | None = None  # the token's fhirUser (`Patient/1`, `Practitioner/2`)
    username: str | None = None  # the token's `sub`
    client_id: str | None = None
    role: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Access:
    """What one interaction touched, as the audit trail records it."""

    kind: str  # `auth.policy.classify`'s interaction kind
    status: int  # the HTTP status answered
    resources: tuple[str, ...] = ()  # `Type/id` named, changed or returned
    patients: tuple[str, ...] = ()  # `Patient/id` those resources belong to
    query: str | None = None  # the query string as the client sent it
    operation: str | None = None  # `$name` for operations; `transaction` for Bundles
    detail: str | None = None  # why it was refused or failed
    job: str | None = None  # the bulk export job a `$export` kick-off started


def audited(kind: str) -> bool:
    """Whether an interaction kind reaches data (conformance reads and unknowns do not)."""
    return kind in _KINDS


def outcome(status: int) -> str:
    return "0" if status < 400 else "4" if status < 500 else "8"


def agents(actor: Actor) -> list[dict[str, Any]]:
    """The requestor (user, role, address) and, when known, the client application."""
    who: dict[str, Any] = (
        {"reference": actor.user} if actor.user else {"display": actor.username or "anonymous"}
    )
    requestor: dict[str, Any] = {"who": who, "requestor": True}
    if actor.username:
        requestor["altId"] = actor.username
    if actor.role:
        requestor["role"] = [{"coding": [{"system": ROLE, "code": actor.role}]}]
    if actor.address:
        requestor["network"] = {"address": actor.address, "type": "2"}
    found = [requestor]
    if actor.client_id:
        found.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": CLIENT, "value": actor.client_id}},
                "requestor": False,
            }
        )
    return found


def rest_event(actor: Actor, access: Access, *, event_id: str, recorded: str) -> dict[str, Any]:
    """The AuditEvent of one interaction (`audited(access.kind)` must hold)."""
    code, action = _KINDS[access.kind]
    if access.operation == "transaction":
        code = "transaction"
    subtype = [{"system": INTERACTION, "code": code}]
    if access.operation and access.operation.startswith("$"):
        subtype.append({"system": OPERATION, "code": access.operation})
    entities: list[dict[str, Any]] = [
        {"what": {"reference": ref}, **_RESOURCE_ENTITY} for ref in access.resources
    ]
    entities += [{"what": {"reference": ref}, **_PATIENT_ENTITY} for ref in access.patients]
    if access.query:
        encoded = base64.b64encode(access.query.encode()).decode()
        entities.append({**_QUERY_ENTITY, "query": encoded})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": subtype,
        "action": action,
        "recorded": recorded,
        "outcome": outcome(access.status),
        "agent": agents(actor),
        "source": SOURCE,
    }
    if access.detail and access.status >= 400:
        event["outcomeDesc"] = access.detail
    if entities:
        event["entity"] = entities
    return event
