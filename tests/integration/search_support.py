"""Helpers for the search integration tests: tagged resources, searching, ids of a Bundle.

Every test marks the resources it creates with its own identifier
(`urn:test|<marker>`) and includes that in its searches, so tests sharing a
module's database cannot see each other's data.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.rest_support import create

TEST_SYSTEM = "urn:test"


def marker() -> str:
    return uuid.uuid4().hex[:12]


def tagged(client: TestClient, mark: str, resource: dict[str, Any]) -> dict[str, Any]:
    """Create `resource` carrying the test's identifier; returns the stored resource."""
    identifiers = [*resource.get("identifier", []), {"system": TEST_SYSTEM, "value": mark}]
    return create(client, {**resource, "identifier": identifiers})


def search(client: TestClient, rtype: str, query: str, mark: str | None = None) -> dict[str, Any]:
    scope = f"identifier={TEST_SYSTEM}|{mark}" if mark else ""
    url = f"/fhir/{rtype}?{'&'.join(p for p in (scope, query) if p)}"
    response = client.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    for item in bundle.get("link", []):
        if item["relation"] == relation:
            url: str = item["url"]
            return url
    return None
