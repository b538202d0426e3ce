"""Read-only conformance resources served from packaged files.

CodeSystem and ValueSet come from `terminology/`, StructureDefinition from
`profiles/` (the extensions this server defines), Measure from the report
metrics (`reporting.measures`), and OperationDefinition from
the operations registered on the server. They support read and a search by
`url` or `name`; they cannot be written.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_server.fhir.datafiles import load_json_folder
from fhir_server.fhir.errors import NotFound
from fhir_server.fhir.terminology import resources_by_type
from fhir_server.reporting.measures import measures
from fhir_server.rest.bundles_common import bundle, full_url


@cache
def _profiles() -> tuple[dict[str, Any], ...]:
    return tuple(
        d for d in load_json_folder("profiles") if d.get("resourceType") == "StructureDefinition"
    )


def conformance_resources(
    resource_type: str, extra: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    if resource_type == "StructureDefinition":
        return list(_profiles())
    if resource_type in ("CodeSystem", "ValueSet"):
        return resources_by_type()[resource_type]
    if resource_type == "Measure":
        return measures()
    return extra.get(resource_type, [])


def read_conformance(
    resources: list[dict[str, Any]], resource_type: str, rid: str
) -> dict[str, Any]:
    for resource in resources:
        if resource.get("id") == rid:
            return resource
    raise NotFound(f"{resource_type}/{rid} is not known.")


def search_conformance(
    resources: list[dict[str, Any]],
    resource_type: str,
    params: list[tuple[str, str]],
    base_url: str,
) -> dict[str, Any]:
    wanted = {k: v for k, v in params if k in ("url", "name", "_id")}
    field_of = {"_id": "id"}
    matches = [
        r
        for r in resources
        if all(r.get(field_of.get(k, k)) == v.split("|")[0] for k, v in wanted.items())
    ]
    entries = [
        {
            "fullUrl": full_url(base_url, resource_type, r["id"]),
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in matches
    ]
    link = [{"relation": "self", "url": f"{base_url}/{resource_type}"}]
    return bundle("searchset", entries, total=len(entries), link=link)
