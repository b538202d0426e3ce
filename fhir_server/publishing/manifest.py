"""The `$bulk-publish` manifest (SMART Scheduling Links, after FHIR Bulk Data's).

One output per published type, each the URL of an NDJSON file. The files are
built when fetched, from live availability; an incremental poll passes the
previous manifest's `transactionTime` as `_since`, which the file URLs carry
on, so they hold only what changed since then (a change made between the
manifest and the file fetch may come twice, never not at all).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhir_server.publishing.public import PUBLISHED_TYPES


def file_url(base_url: str, resource_type: str, since: str | None) -> str:
    """Where a published type's NDJSON file is served."""
    query = f"?{urlencode({'_since': since})}" if since else ""
    return f"{base_url}/$bulk-publish/{resource_type}.ndjson{query}"


def manifest(
    base_url: str, request: str, transaction_time: str, since: str | None
) -> dict[str, Any]:
    return {
        "transactionTime": transaction_time,
        "request": request,
        "output": [
            {"type": rtype, "url": file_url(base_url, rtype, since)} for rtype in PUBLISHED_TYPES
        ],
        "error": [],
    }
