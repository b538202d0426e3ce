"""Pieces shared by every Bundle the server builds (history, search, batch)."""

from __future__ import annotations

from typing import Any

from fhir_server.store.clock import now_instant
from fhir_server.store.resources import Version


def bundle(kind: str, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A Bundle of `entries`; none means no `entry` element (R4 JSON has no empty arrays)."""
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": kind,
        "timestamp": now_instant(),
        **extra,
    }
    if entries:
        out["entry"] = entries
    return out


def full_url(base_url: str, resource_type: str, rid: str) -> str:
    return f"{base_url}/{resource_type}/{rid}"


def history_entry(base_url: str, version: Version) -> dict[str, Any]:
    url = f"{version.resource_type}/{version.id}"
    entry: dict[str, Any] = {"fullUrl": full_url(base_url, version.resource_type, version.id)}
    if version.resource is not None:
        entry["resource"] = version.resource
    entry["request"] = {
        "method": version.method,
        "url": version.resource_type if version.method == "POST" else url,
    }
    status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(version.method, "200 OK")
    entry["response"] = {"status": status, "etag": version.etag, "lastModified": version.updated}
    return entry
