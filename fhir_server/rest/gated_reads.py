"""Reading every match of a search as a given caller, through the access gate.

The server's own readers that act for someone (the anonymous public caller
of `$bulk-publish`, a calendar feed's owner) dispatch ordinary searches page
by page with that caller's token context, so the gate narrows the queries and
judges every resource leaving exactly as it would for the caller's own token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fhir_server.fhir.messages import Caller
from fhir_server.rest.dispatch import dispatch
from fhir_server.rest.messages import FhirRequest
from fhir_server.rest.services import Services


async def read_all(
    services: Services,
    caller: Caller,
    rtype: str,
    params: list[tuple[str, str]],
    count: int | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every resource of `rtype` matching `params` that `caller` may read (in pages of
    `count`, the largest page size when None)."""
    paging = [("_count", str(count or services.settings.max_page_size)), ("_total", "none")]
    cursor: list[tuple[str, str]] = []
    while True:
        req = FhirRequest("GET", [rtype], [*params, *paging, *cursor], auth=caller)
        page = (await dispatch(services, req)).resource or {}
        for entry in page.get("entry") or []:
            if entry.get("search", {}).get("mode", "match") == "match":
                yield entry["resource"]
        following = next((x["url"] for x in page.get("link", []) if x["relation"] == "next"), "")
        values = parse_qs(urlsplit(following).query).get("_cursor")
        if not values:
            return
        cursor = [("_cursor", values[0])]
