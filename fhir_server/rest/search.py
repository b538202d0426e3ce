"""Search as the REST edge serves it: searchset Bundles, paging links, capability entries.

Parameters come from `fhir.search_params` (data), are parsed by
`fhir.search_syntax` and run by `store.search_engine`; this module only
shapes the answer. Paging links carry an opaque `_cursor` (the sort values
and id of the edge row, see `store.search_engine`), never an offset.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.fhir.errors import BadRequest, Forbidden
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.fhir.search_params import search_params
from fhir_server.fhir.search_syntax import Criterion, Has, ParsedSearch, SearchParser
from fhir_server.rest.bundles_common import bundle, full_url
from fhir_server.settings import Settings
from fhir_server.store.resources import ResourceStore, body_of
from fhir_server.store.search_engine import (
    Found,
    Reach,
    SearchEngine,
    reach_of,
    revinclude_names,
)
from fhir_server.store.search_query import sort_fields, sort_values


def encode_cursor(forward: bool, values: list[Any]) -> str:
    raw = orjson.dumps(["a" if forward else "b", values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, width: int) -> tuple[bool, list[Any]]:
    try:
        direction, values = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest(
            "_cursor is not a paging cursor this server issued.", expression=("_cursor",)
        ) from None
    if (
        direction not in ("a", "b")
        or not isinstance(values, list)
        or len(values) != width
        or not all(v is None or isinstance(v, str | int | float) for v in values)
    ):
        raise BadRequest("_cursor does not belong to this search.", expression=("_cursor",))
    return direction == "a", values


def _system_type(params: list[tuple[str, str]]) -> str:
    """System search (`[base]?_type=T&...`) is served for one type at a time, as `[base]/T`."""
    types = [t for name, value in params if name == "_type" for t in value.split(",") if t]
    if len(types) != 1 or types[0] not in SERVED_TYPES:
        raise BadRequest(
            "System search takes exactly one served type in _type.", expression=("_type",)
        )
    return types[0]


def _entry(base_url: str, found: Found, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": full_url(base_url, found.resource_type, found.doc["_id"]),
        "resource": body_of(found.doc),
        "search": {"mode": mode},
    }


class FhirSearcher:
    """The `Searcher` of `rest.services`, over the store's `idx` fields."""

    def __init__(self, store: ResourceStore, settings: Settings) -> None:
        self.base_url = settings.base_url
        self.parser = SearchParser(
            settings.base_url, settings.default_page_size, settings.max_page_size
        )
        self.engine = SearchEngine(store)
        for rtype in SERVED_TYPES:  # load and compile the definitions now, not on a request
            search_params(rtype)

    async def ensure_indexes(self) -> None:
        await self.engine.ensure_indexes()

    def _parse(
        self, resource_type: str, params: list[tuple[str, str]], strict: bool
    ) -> ParsedSearch:
        search = self.parser.parse(resource_type, params)
        if strict and search.unknown:
            names = ", ".join(search.unknown)
            raise BadRequest(
                f"Unknown or unsupported search parameters: {names:.200}.",
                expression=tuple(search.unknown),
            )
        return search

    def _reach(self, limits: ReadLimits | None) -> Reach | None:
        """The limits as parsed criteria per type, for the engine's every query."""
        return reach_of(self.parser, limits)

    def _limited(
        self, resource_type: str, criteria: list[Criterion | Has], reach: Reach | None
    ) -> list[Criterion | Has]:
        """The client's criteria plus what the caller's limits require of the type."""
        extra = [] if reach is None else reach(resource_type)
        if extra is None:
            raise Forbidden(f"The access token may not read {resource_type}.")
        return [*criteria, *extra]

    async def search_bundle(
        self,
        resource_type: str | None,
        params: list[tuple[str, str]],
        *,
        strict: bool,
        limits: ReadLimits | None = None,
    ) -> dict[str, Any]:
        if resource_type is None:
            resource_type = _system_type(params)
        search = self._parse(resource_type, params, strict)
        reach = self._reach(limits)
        criteria = self._limited(resource_type, search.criteria, reach)
        filters = await self.engine.filters(resource_type, criteria, reach)
        fields = sort_fields(resource_type, search.sort)
        link = f"{self.base_url}/{resource_type}"
        total = None
        if search.total != "none" or search.summary == "count" or search.count == 0:
            total = await self.engine.count(resource_type, filters)
        if search.summary == "count" or search.count == 0:
            self_url = f"{link}?{urlencode(search.kept)}" if search.kept else link
            return bundle(
                "searchset", [], total=total, link=[{"relation": "self", "url": self_url}]
            )
        forward, cursor = True, None
        if search.cursor is not None:
            forward, cursor = decode_cursor(search.cursor, len(fields))
        page = await self.engine.page(
            resource_type,
            filters,
            fields,
            cursor,
            forward=forward,
            count=search.count,
        )
        included = await self.engine.included(page.rows, search.include, search.revinclude, reach)
        entries = [_entry(self.base_url, row, "match") for row in page.rows]
        entries += [_entry(self.base_url, row, "include") for row in included]
        extra: dict[str, Any] = {
            "link": self._links(link, search, page.rows, fields, forward, page.more)
        }
        if total is not None:
            extra["total"] = total
        return bundle("searchset", entries, **extra)

    def _links(
        self,
        link: str,
        search: ParsedSearch,
        rows: list[Found],
        fields: list[tuple[str, int]],
        forward: bool,
        more: bool,
    ) -> list[dict[str, str]]:
        kept = urlencode(search.kept)  # once: quoting every parameter is most of the links' cost

        def url(cursor: str | None) -> str:
            parts = [kept] if kept else []
            if cursor:
                parts.append(urlencode([("_cursor", cursor)]))
            return f"{link}?{'&'.join(parts)}" if parts else link

        links = [{"relation": "self", "url": url(search.cursor)}]
        links.append({"relation": "first", "url": url(None)})
        if rows:
            last = sort_values(rows[-1].doc, fields)
            first = sort_values(rows[0].doc, fields)
            if more if forward else search.cursor is not None:
                links.append({"relation": "next", "url": url(encode_cursor(True, last))})
            if (search.cursor is not None) if forward else more:
                links.append({"relation": "previous", "url": url(encode_cursor(False, first))})
        return links

    async def matching_ids(
        self,
        resource_type: str,
        params: list[tuple[str, str]],
        limits: ReadLimits | None = None,
    ) -> list[str]:
        """At most two ids; unknown parameters are refused so a typo cannot match everything.

        Evaluated within the caller's limits, so a conditional interaction's answer
        never depends on a resource the caller cannot read.
        """
        search = self._parse(resource_type, params, strict=True)
        if not search.criteria:
            raise BadRequest("A conditional request needs at least one search criterion.")
        reach = self._reach(limits)
        criteria = self._limited(resource_type, search.criteria, reach)
        return await self.engine.ids(resource_type, criteria, 2, reach)

    async def readable_ids(
        self, resource_type: str, ids: list[str], limits: ReadLimits
    ) -> list[str]:
        reach = self._reach(limits)
        wanted = self.parser.parse(resource_type, [("_id", ",".join(ids))]).criteria
        criteria = self._limited(resource_type, wanted, reach)
        return await self.engine.ids(resource_type, criteria, len(ids), reach)

    def capability(self, resource_type: str) -> dict[str, Any]:
        params = search_params(resource_type)
        return {
            "searchParam": [
                {"name": p.code, "definition": p.url, "type": p.type} for p in params.values()
            ],
            "searchInclude": ["*"]
            + [f"{resource_type}:{p.code}" for p in params.values() if p.type == "reference"],
            "searchRevInclude": revinclude_names(resource_type),
        }
