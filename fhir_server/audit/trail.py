"""What an interaction touched, read off its request and its answer (pure).

The gate hands every interaction to `AuditRecorder.watch`, which asks this
module for the `Access` to record: the resource the URL names, every
resource the answer carries (search matches and includes, history entries,
operation outputs, a write's result or its `Location`), the patients those
belong to, the query as sent, and the operation's name. Nothing is looked up
in the store: the facts are at hand, so recording costs microseconds.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.audit.context import client_address
from fhir_server.audit.events import Access, Actor
from fhir_server.auth.compartment import operation_resources, reference_key
from fhir_server.auth.policy import TokenContext, classify
from fhir_server.rest.messages import FhirRequest, FhirResponse

_NO_DATA = frozenset({"OperationOutcome", "Bundle", "Parameters"})
# A literal reference to a Patient, relative or absolute, with or without a version.
_PATIENT_REFERENCE = re.compile(
    rb'"reference":"(?:[^"]*/)?(Patient/[A-Za-z0-9\-.]{1,64})(?:/_history/[^"]*)?"'
)


def actor_of(ctx: TokenContext) -> Actor:
    return Actor(
        user=ctx.fhir_user,
        username=ctx.sub,
        client_id=ctx.client_id,
        role=ctx.role,
        address=client_address.get(),
    )


def _carried(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources an answer carries: itself, a Bundle's entries, a Parameters' outputs."""
    kind = resource.get("resourceType")
    if kind == "Bundle":
        return [e["resource"] for e in resource.get("entry") or () if "resource" in e]
    if kind == "Parameters":
        return operation_resources(resource)
    return [resource]


def _removed(resource: dict[str, Any]) -> list[str]:
    """`Type/id` of the history entries that are deletions (no resource, only a URL)."""
    return [
        key
        for e in resource.get("entry") or ()
        if "resource" not in e and (key := reference_key(str(e.get("fullUrl", ""))))
    ]


def _patient_references(body: dict[str, Any]) -> list[str]:
    """`Patient/id` of every reference in an answer, in one pass over its JSON text: walking
    the dicts of a 20-entry search in Python costs about 120 us, this about 15."""
    return sorted({m.decode() for m in _PATIENT_REFERENCE.findall(orjson.dumps(body))})


def access_of(
    req: FhirRequest, status: int, response: FhirResponse | None, detail: str | None = None
) -> Access:
    interaction = classify(req)
    named: dict[str, None] = {}  # ordered set
    patients: dict[str, None] = {}
    if interaction.resource_type and interaction.rid:
        named[f"{interaction.resource_type}/{interaction.rid}"] = None
    body = response.resource if response is not None else None
    if body is not None and interaction.kind != "batch":  # entries are recorded one by one
        for resource in _carried(body):
            kind, rid = resource.get("resourceType"), resource.get("id")
            if kind in _NO_DATA or not rid:
                continue
            named[f"{kind}/{rid}"] = None
            if kind == "Patient":
                patients[f"Patient/{rid}"] = None
        patients.update(dict.fromkeys(_patient_references(body)))
        if body.get("resourceType") == "Bundle":
            named.update(dict.fromkeys(_removed(body)))
    location = response.headers.get("Location") if response is not None else None
    if location and (key := reference_key(location)):
        named[key] = None
    operation = next((p for p in req.path if p.startswith("$")), None)
    if interaction.kind == "batch" and isinstance(req.body, dict):
        operation = str(req.body.get("type"))
    criteria = req.header("if-none-exist")
    return Access(
        kind=interaction.kind,
        status=status,
        resources=tuple(named),
        patients=tuple(patients),
        query=urlencode(req.params) if req.params else criteria,
        operation=operation,
        detail=detail,
    )
