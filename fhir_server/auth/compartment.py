"""The patient compartment as data: which types belong and which references tie them.

Facts from the FHIR R4 CompartmentDefinition `patient`
(profiles/r4/compartmentdefinition-patient.json) and the expressions of its
search parameters (profiles/r4/search-parameters.json). Pure: no I/O after the
data files are read once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import fhirpathpy
import orjson
from fhirpathpy.models import models

from fhir_server.fhir.datafiles import data_dir
from fhir_server.fhir.resource_types import SERVED_TYPES

# The public directory a patient needs to book (the list). Schedule is in
# the R4 patient compartment through `actor`, but a clinic's schedules are public.
DIRECTORY_TYPES = frozenset(
    {
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "HealthcareService",
        "Schedule",
        "Slot",
    }
)

Evaluator = Callable[[dict[str, Any]], list[Any]]


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((data_dir("profiles") / "r4" / name).read_bytes())
    return loaded


@cache
def compartment_params() -> dict[str, tuple[str, ...]]:
    """Resource type -> the search parameters that place it in a patient's compartment."""
    definition = _load("compartmentdefinition-patient.json")
    return {
        entry["code"]: tuple(entry.get("param", ()))
        for entry in definition["resource"]
        if entry.get("param")
    }


@cache
def _evaluators() -> dict[str, tuple[Evaluator, ...]]:
    expressions: dict[tuple[str, str], str] = {}
    for entry in _load("search-parameters.json")["entry"]:
        parameter = entry["resource"]
        for base in parameter.get("base", ()):
            expressions[(base, parameter["code"])] = parameter.get("expression", "")
    out: dict[str, tuple[Evaluator, ...]] = {}
    for rtype, params in compartment_params().items():
        if rtype not in SERVED_TYPES:  # never stored here (AuditEvent's needs `resolve()`)
            continue
        compiled: list[Evaluator] = []
        for param in params:
            expression = expressions.get((rtype, param))
            if expression:
                compiled.append(_compile(_only(expression, rtype)))
        out[rtype] = tuple(compiled)
    return out


def _compile(expression: str) -> Evaluator:
    evaluate = fhirpathpy.compile(expression, models["r4"])

    def run(resource: dict[str, Any]) -> list[Any]:
        return list(evaluate(resource, None))

    return run


def _only(expression: str, rtype: str) -> str:
    """The branch of a multi-type expression (`A.x | B.y`) that applies to `rtype`."""
    parts = [p.strip() for p in expression.split("|")]
    mine = [p for p in parts if p.startswith(f"{rtype}.")]
    return " | ".join(mine) if mine else expression


def reference_key(reference: str) -> str | None:
    """`Type/id` of a relative or absolute literal reference (history suffix dropped)."""
    path = reference.split("/_history/")[0].rstrip("/")
    parts = path.split("/")
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return f"{parts[-2]}/{parts[-1]}"


def compartment_references(resource: dict[str, Any]) -> set[str]:
    """The `Type/id` keys that place this resource in a compartment."""
    rtype = resource.get("resourceType", "")
    found: set[str] = set()
    for evaluate in _evaluators().get(rtype, ()):
        for value in evaluate(resource):
            if isinstance(value, dict) and isinstance(value.get("reference"), str):
                key = reference_key(value["reference"])
                if key:
                    found.add(key)
    return found


def in_patient_compartment(resource: dict[str, Any], patient_id: str) -> bool:
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    return f"Patient/{patient_id}" in compartment_references(resource)


def patient_references(value: Any) -> set[str]:
    """Every `Patient/id` any literal reference anywhere in a JSON value points at."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                ref = reference_key(item)
                if ref and ref.startswith("Patient/"):
                    found.add(ref)
            else:
                found |= patient_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= patient_references(item)
    return found


def operation_resources(body: Any) -> list[dict[str, Any]]:
    """Resources passed to an operation in a Parameters body (parts included)."""
    found: list[dict[str, Any]] = []
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return found
    pending = list(body.get("parameter") or [])
    while pending:
        parameter = pending.pop()
        if isinstance(parameter, dict):
            if isinstance(parameter.get("resource"), dict):
                found.append(parameter["resource"])
            pending.extend(parameter.get("part") or [])
    return found


_NAMING_VALUES = ("valueString", "valueId", "valueUri", "valueUrl")


def operation_mentions(
    body: Any, query: Iterable[tuple[str, str]] = ()
) -> set[tuple[str | None, str]]:
    """(type or None, id) of everything an operation's inputs name: references, plain id
    strings and URIs (Argonaut's `appt-id` is a uri), the ids of embedded resources, and
    the values of the given query parameters (an operation reads its inputs from both)."""
    mentions: set[tuple[str | None, str]] = set()
    pending: list[Any] = [{"valueString": value} for _, value in query]
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        pending += list(body.get("parameter") or [])
    while pending:
        parameter = pending.pop()
        if not isinstance(parameter, dict):
            continue
        pending.extend(parameter.get("part") or [])
        reference = (parameter.get("valueReference") or {}).get("reference")
        resource = parameter.get("resource")
        for value in (reference, *(parameter.get(name) for name in _NAMING_VALUES)):
            if isinstance(value, str) and value:
                key = reference_key(value)
                mentions.add((key.split("/")[0], key.split("/")[1]) if key else (None, value))
        if isinstance(resource, dict) and isinstance(resource.get("id"), str):
            mentions.add((resource.get("resourceType"), resource["id"]))
    return mentions


def directory_visible(resource: dict[str, Any]) -> bool:
    """Directory entries are public, except Slots that are not free."""
    rtype = resource.get("resourceType")
    if rtype == "Slot":
        return resource.get("status") == "free"
    return rtype in DIRECTORY_TYPES
