"""Output negotiation: `_format`, `Accept`, `_pretty`, `_summary`, `_elements`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_server.fhir.definitions import top_level_elements
from fhir_server.fhir.errors import BadRequest, NotAcceptable

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_XML_TYPES = {"xml", "application/xml", "application/fhir+xml", "text/xml", "application/xml+fhir"}
_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}


def media_type(format_param: str | None, accept: str | None, sent: str | None = None) -> str:
    """The JSON media type to answer with, or 406 for XML and other formats.

    `_format` wins, then the first JSON type the Accept header names; with no
    preference (no Accept, or a wildcard) the type the client sent its body in
    is echoed, so an `application/json` client gets `application/json` back.
    """
    if format_param is not None:
        wanted = format_param.split(";")[0].strip().lower()
        if wanted in _JSON_TYPES:
            return "application/json" if wanted == "application/json" else FHIR_JSON
        raise NotAcceptable(
            "Only JSON is supported: use _format=json (XML is not implemented).",
            expression=("_format",),
        )
    echoed = "application/json" if sent == "application/json" else FHIR_JSON
    offered = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    for option in offered:
        if option in (FHIR_JSON, "application/json+fhir", "application/json"):
            return "application/json" if option == "application/json" else FHIR_JSON
        if option in ("*/*", "application/*"):
            return echoed
    if any(o in _XML_TYPES for o in offered):
        raise NotAcceptable("Only JSON is supported (XML is not implemented).")
    return echoed


def _mark_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    return {**resource, "meta": meta}


@cache
def _kept(resource_type: str, mode: str) -> frozenset[str] | None:
    elements = top_level_elements(resource_type)
    if elements is None:
        return None
    if mode == "true":
        return frozenset(n for n, (summary, _) in elements.items() if summary)
    return frozenset(n for n, (_, required) in elements.items() if required) | {"text"}


def _summarise(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    if mode == "data":
        return _mark_subsetted({k: v for k, v in resource.items() if k != "text"})
    kept = _kept(resource["resourceType"], mode)
    if kept is None:
        return resource
    base = {"resourceType", "id", "meta"}
    return _mark_subsetted({k: v for k, v in resource.items() if k in base or k in kept})


def _select(resource: dict[str, Any], elements: frozenset[str]) -> dict[str, Any]:
    elements_info = top_level_elements(resource["resourceType"]) or {}
    required = {n for n, (_, req) in elements_info.items() if req}
    keep = elements | required | {"resourceType", "id", "meta"}
    return _mark_subsetted({k: v for k, v in resource.items() if k in keep})


@dataclass(frozen=True)
class Output:
    """How to render a response, read and checked before the request runs.

    Checking first means a bad `_summary` or an XML `Accept` refuses the
    request before anything is written.
    """

    media: str = FHIR_JSON
    pretty: bool = False
    summary: str | None = None
    elements: frozenset[str] | None = None


def output_options(query: Mapping[str, str], accept: str | None, sent: str | None = None) -> Output:
    summary = query.get("_summary")
    if summary not in (None, "false", "true", "text", "data", "count"):
        raise BadRequest(
            "_summary must be true, text, data, count or false.", expression=("_summary",)
        )
    raw = query.get("_elements")
    elements = frozenset(e.strip() for e in raw.split(",") if e.strip()) if raw else None
    return Output(
        media=media_type(query.get("_format"), accept, sent),
        pretty=query.get("_pretty") == "true",
        summary=None if summary == "false" else summary,
        elements=elements or None,
    )


def _one(item: dict[str, Any], output: Output) -> dict[str, Any]:
    if output.summary in ("true", "text", "data"):
        return _summarise(item, output.summary)
    if output.elements:
        return _select(item, output.elements)
    return item


def _shape_bundle(bundle: dict[str, Any], output: Output) -> dict[str, Any]:
    if output.summary == "count":
        return {k: v for k, v in bundle.items() if k != "entry"}
    entries = [
        {**e, "resource": _one(e["resource"], output)}
        if "resource" in e and e.get("search", {}).get("mode", "match") == "match"
        else e
        for e in bundle.get("entry", [])
    ]
    return {**bundle, "entry": entries} if entries else bundle


def shape(resource: dict[str, Any], output: Output) -> dict[str, Any]:
    """Apply `_summary`/`_elements` to a resource, or to each resource of a Bundle."""
    if output.summary is None and not output.elements:
        return resource
    kind = resource.get("resourceType")
    if kind == "Bundle":
        return _shape_bundle(resource, output)
    if kind == "OperationOutcome" or output.summary == "count":
        return resource
    return _one(resource, output)
