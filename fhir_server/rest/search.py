"""Search as the REST edge serves it (minimal: `_id` and `_count`; issue 3 replaces it)."""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.rest.bundles_common import bundle, full_url
from fhir_server.settings import Settings
from fhir_server.store.resources import ResourceStore


class FhirSearcher:
    def __init__(self, store: ResourceStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def _ids(self, resource_type: str, params: list[tuple[str, str]], limit: int) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"deleted": {"$eq": False}}
        for name, value in params:
            if name == "_id":
                query["_id"] = {"$in": value.split(",")}
            elif not name.startswith("_"):
                raise BadRequest(f"Search parameter {name!r:.40} is not supported.", expression=(name,))
        cursor = self.store.collection(resource_type).find(query, {"resource": 1}).sort("_id", 1).limit(limit)
        return [doc async for doc in cursor]

    async def search_bundle(
        self, resource_type: str | None, params: list[tuple[str, str]], *, strict: bool
    ) -> dict[str, Any]:
        if resource_type is None:
            raise BadRequest("System search is not supported.")
        docs = await self._ids(resource_type, params, self.settings.default_page_size)
        base = self.settings.base_url
        entries = [
            {"fullUrl": full_url(base, resource_type, d["_id"]), "resource": d["resource"], "search": {"mode": "match"}}
            for d in docs
        ]
        return bundle("searchset", entries, link=[{"relation": "self", "url": f"{base}/{resource_type}"}])

    async def matching_ids(self, resource_type: str, params: list[tuple[str, str]]) -> list[str]:
        return [d["_id"] for d in await self._ids(resource_type, params, 2)]

    def capability(self, resource_type: str) -> dict[str, Any]:
        return {"searchParam": [{"name": "_id", "type": "token"}]}
