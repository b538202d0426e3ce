"""Reading operation inputs (query string, form, or a Parameters body) and writing outputs."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.instants import parse_instant
from fhir_server.rest.messages import FhirRequest
from fhir_server.scheduling import extensions as ext

CANONICAL = ext.BASE.rsplit("/", 1)[0]


def inputs(req: FhirRequest) -> dict[str, list[Any]]:
    """Every input by name: query/form values as strings, Parameters values as given."""
    out: dict[str, list[Any]] = defaultdict(list)
    for name, value in req.params:
        if not name.startswith("_"):
            out[name].append(value)
    body = req.body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter", []):
            name = str(parameter.get("name", ""))
            if "resource" in parameter:
                out[name].append(parameter["resource"])
                continue
            given = next((v for k, v in parameter.items() if k.startswith("value")), None)
            if given is not None:
                out[name].append(given)
    elif isinstance(body, dict) and body.get("resourceType"):
        out[str(body["resourceType"])].append(body)
    return out


def first(found: dict[str, list[Any]], *names: str) -> Any:
    for name in names:
        if found.get(name):
            return found[name][0]
    return None


def strings(found: dict[str, list[Any]], name: str) -> tuple[str, ...]:
    """String inputs, comma-separated lists split, references reduced to their reference."""
    out: list[str] = []
    for value in found.get(name, []):
        if isinstance(value, dict):
            value = value.get("reference") or value.get("code") or ""
        out += [v for v in str(value).split(",") if v]
    return tuple(out)


def moment(value: Any, name: str) -> datetime:
    """A dateTime input as an aware datetime (a bare date is midnight UTC)."""
    text = str(value or "")
    try:
        parsed = parse_instant(text)
    except ValueError:
        raise BadRequest(f"{name} must be a FHIR dateTime.", expression=(name,)) from None
    if len(text) == 10:
        return parsed.replace(tzinfo=UTC)
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} must include a time zone offset.", expression=(name,))
    return parsed


def definition(
    code: str,
    resource: str | None,
    description: str,
    parameters: list[dict[str, Any]],
    *,
    type_level: bool = True,
    instance: bool = False,
    affects_state: bool = False,
) -> dict[str, Any]:
    """An OperationDefinition for one of our operations (system level when `resource` is
    None)."""
    name = f"{resource}-{code}" if resource else code
    return {
        "resourceType": "OperationDefinition",
        "id": name,
        "url": f"{CANONICAL}/OperationDefinition/{name}",
        "name": code.replace("-", "_"),
        "status": "active",
        "kind": "operation",
        "description": description,
        "affectsState": affects_state,
        "code": code,
        **({"resource": [resource]} if resource else {}),
        "system": resource is None,
        "type": type_level and resource is not None,
        "instance": instance,
        "parameter": parameters,
    }


def param(
    name: str, use: str, type_: str, *, min_: int = 0, max_: str = "1", doc: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "use": use,
        "min": min_,
        "max": max_,
        "type": type_,
        "documentation": doc,
    }
