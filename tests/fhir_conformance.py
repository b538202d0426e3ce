"""Every FHIR body the server sends, checked by a validator that is not the server's own.

The server validates with the `fhir.resources` models; a response it builds
itself (Bundles, OperationOutcomes, Parameters, the CapabilityStatement) could
still break R4 JSON in ways those models accept or never see, such as an
empty `entry` array. `fhirkit` (fhirkit-rs, generated from the R4
specification) checks structure, cardinality and types; its R4 JSON rule
"no empty arrays or objects" is checked here at every depth too, because
fhirkit only applies it to the elements of resources, not inside datatypes.
`tests/conftest.py` runs `check_response` on every TestClient response.
"""

from __future__ import annotations

from typing import Any

import fhirkit
import httpx
import orjson

FHIR_MEDIA = ("application/fhir+json", "application/json")


def empty_values(value: Any, path: str) -> list[str]:
    """Paths of empty arrays, empty objects, empty strings and nulls, at any depth."""
    if isinstance(value, dict):
        if not value:
            return [f"{path}: empty object"]
        found = []
        for key, item in value.items():
            found += empty_values(item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        if not value:
            return [f"{path}: empty array"]
        found = []
        for index, item in enumerate(value):
            found += empty_values(item, f"{path}[{index}]")
        return found
    if value is None or value == "":
        return [f"{path}: {'null' if value is None else 'empty string'}"]
    return []


def problems(body: Any) -> list[str]:
    """What a strict R4 JSON reader would refuse in this resource."""
    if not isinstance(body, dict) or "resourceType" not in body:
        return []
    found = empty_values(body, str(body["resourceType"]))
    found += [str(issue) for issue in fhirkit.validate(body) if issue.severity == "error"]
    return found


def check_response(response: httpx.Response) -> None:
    """Fail the test when a FHIR JSON response is not valid R4 JSON."""
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media not in FHIR_MEDIA or not response.content:
        return
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return  # not JSON at all: the test that made the request sees that
    found = problems(body)
    if found:
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url} answered invalid R4 JSON:\n  " + "\n  ".join(found)
        )
