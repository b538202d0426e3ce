"""The CapabilityStatement, generated from what is registered so it cannot drift."""

from __future__ import annotations

from typing import Any

from fhir_server import __version__
from fhir_server.fhir.resource_types import CONFORMANCE_TYPES, SERVED_TYPES
from fhir_server.notifications.topics import TOPIC_CANONICAL_EXT, TOPICS
from fhir_server.rest.services import Services

_INSTANCE = ["read", "vread", "update", "patch", "delete", "history-instance"]
_TYPE = ["history-type", "create", "search-type"]


def _operations(services: Services, rtype: str | None) -> list[dict[str, Any]]:
    out = []
    for operation in services.operations:
        definition = operation.definition
        applies = rtype in definition.get("resource", []) if rtype else definition.get("system")
        if applies:
            out.append({"name": definition["code"], "definition": definition["url"]})
    return out


def _resource(services: Services, rtype: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": rtype,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        "interaction": [{"code": code} for code in _INSTANCE + _TYPE],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        **services.searcher.capability(rtype),
    }
    if rtype == "Subscription":  # the Backport IG's way of listing the topics offered
        entry["extension"] = [{"url": TOPIC_CANONICAL_EXT, "valueCanonical": t.url} for t in TOPICS]
    operations = _operations(services, rtype)
    if operations:
        entry["operation"] = operations
    return entry


def _read_only(services: Services, rtype: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": "url", "type": "uri"},
            {"name": "name", "type": "string"},
        ],
    }
    operations = _operations(services, rtype)
    if operations:
        entry["operation"] = operations
    return entry


def capability_statement(services: Services, published_at: str) -> dict[str, Any]:
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": [_resource(services, t) for t in SERVED_TYPES]
        + [_read_only(services, t) for t in (*CONFORMANCE_TYPES, "OperationDefinition")],
        "interaction": [
            {"code": "transaction"},
            {"code": "batch"},
            {"code": "history-system"},
        ],
    }
    if services.security:
        rest["security"] = services.security
    system_operations = _operations(services, None)
    if system_operations:
        rest["operation"] = system_operations
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published_at,
        "publisher": "fhir-server",
        "kind": "instance",
        "software": {"name": "fhir-server", "version": __version__},
        "implementation": {"description": "Clinic booking FHIR server", "url": services.base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }
