"""Batch and transaction Bundles.

A transaction runs every entry in one unit of work, in the order the spec
gives (DELETE, POST, PUT/PATCH, GET), after giving each POST its id up front so
`urn:uuid:` references between entries can be rewritten; any failure undoes
all of it and answers with that entry's OperationOutcome. A batch runs each
entry on its own and reports each result, error or not, in its entry.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from fhir_server.fhir.errors import BadRequest, FhirError, PayloadTooLarge
from fhir_server.rest.bundles_common import bundle
from fhir_server.rest.dispatch import dispatch
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.services import Services
from fhir_server.store.unit_of_work import UnitOfWork

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}


def _entry_request(
    entry: dict[str, Any], index: int, base_url: str, auth: Any = None
) -> FhirRequest:
    request = entry.get("request")
    where = f"Bundle.entry[{index}].request"
    if not isinstance(request, dict) or "method" not in request or "url" not in request:
        raise BadRequest("Each entry needs request.method and request.url.", expression=(where,))
    method = str(request["method"]).upper()
    if method not in _ORDER:
        raise BadRequest(
            f"Unsupported entry method {method!r:.10}.", expression=(f"{where}.method",)
        )
    url = str(request["url"])
    if url.startswith(base_url):
        url = url[len(base_url) :]
    parts = urlsplit(url)
    headers = {
        name: request[key]
        for key, name in (
            ("ifMatch", "if-match"),
            ("ifNoneExist", "if-none-exist"),
            ("ifNoneMatch", "if-none-match"),
            ("ifModifiedSince", "if-modified-since"),
        )
        if key in request
    }
    body = entry.get("resource")
    if method == "PATCH":
        body = _json_patch_from_binary(body, where)
    return FhirRequest(
        method=method,
        path=[p for p in parts.path.strip("/").split("/") if p],
        params=parse_qsl(parts.query, keep_blank_values=True),
        headers=headers,
        body=body,
        auth=auth,
    )


def _json_patch_from_binary(body: Any, where: str) -> Any:
    """A JSON Patch travels in a Bundle as a Binary (contentType application/json-patch+json)."""
    if not (isinstance(body, dict) and body.get("resourceType") == "Binary"):
        raise BadRequest(
            "A PATCH entry carries its JSON Patch in a Binary resource.", expression=(where,)
        )
    try:
        return orjson.loads(base64.b64decode(body.get("data", ""), validate=True))
    except (binascii.Error, orjson.JSONDecodeError):
        raise BadRequest(
            "The Binary data is not a base64 JSON Patch.", expression=(where,)
        ) from None


def _response_entry(response: FhirResponse) -> dict[str, Any]:
    reason = _REASONS.get(response.status, "")
    out: dict[str, Any] = {"status": f"{response.status} {reason}".strip()}
    if "Location" in response.headers:
        out["location"] = response.headers["Location"]
    if "ETag" in response.headers:
        out["etag"] = response.headers["ETag"]
    entry: dict[str, Any] = {"response": out}
    if response.resource is not None:
        if response.resource.get("resourceType") == "OperationOutcome" and response.status >= 400:
            out["outcome"] = response.resource
        else:
            entry["resource"] = response.resource
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    if location:
        entry = {"fullUrl": location.split("/_history/")[0], **entry}
    return entry


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


def _entries(services: Services, body: dict[str, Any]) -> list[dict[str, Any]]:
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be a list.", expression=("Bundle.entry",))
    if len(entries) > services.settings.max_bundle_entries:
        raise PayloadTooLarge(
            f"The Bundle has {len(entries)} entries; at most "
            f"{services.settings.max_bundle_entries} are accepted.",
            expression=("Bundle.entry",),
        )
    return entries


async def process_bundle(
    services: Services, body: dict[str, Any], auth: Any = None
) -> FhirResponse:
    if body.get("resourceType") != "Bundle":
        raise BadRequest(
            "POST to the base URL takes a batch or transaction Bundle.",
            expression=("resourceType",),
        )
    kind = body.get("type")
    if kind == "batch":
        return await _batch(services, _entries(services, body), auth)
    if kind == "transaction":
        return await _transaction(services, _entries(services, body), auth)
    raise BadRequest("Bundle.type must be 'batch' or 'transaction'.", expression=("Bundle.type",))


async def _batch(services: Services, entries: list[dict[str, Any]], auth: Any) -> FhirResponse:
    results = []
    for index, entry in enumerate(entries):
        try:
            req = _entry_request(entry, index, services.base_url, auth)
            response = await dispatch(services, req)
            results.append(_response_entry(response))
        except FhirError as error:
            results.append({"response": {"status": str(error.status), "outcome": error.outcome()}})
    return FhirResponse(200, bundle("batch-response", results))


def _assign_ids(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Give each POSTed resource its id now, keyed by its `urn:uuid:` fullUrl."""
    ids: dict[str, str] = {}
    for entry in entries:
        resource = entry.get("resource")
        if (entry.get("request") or {}).get("method", "").upper() != "POST" or not isinstance(
            resource, dict
        ):
            continue
        new_id = str(uuid.uuid4())
        full = entry.get("fullUrl")
        if isinstance(full, str) and full.startswith("urn:"):
            ids[full] = f"{resource.get('resourceType')}/{new_id}"
        entry["_assigned"] = new_id
    return ids


async def _transaction(
    services: Services, entries: list[dict[str, Any]], auth: Any
) -> FhirResponse:
    ids = _assign_ids(entries)
    requests = []
    for index, entry in enumerate(entries):
        req = _entry_request(entry, index, services.base_url, auth)
        req.body = _rewrite(req.body, ids)
        req.assigned_id = entry.get("_assigned")
        requests.append((index, req))
    order = sorted(requests, key=lambda pair: _ORDER[pair[1].method])
    results: dict[int, dict[str, Any]] = {}
    async with services.store.unit_of_work() as uow:
        for index, req in order:
            results[index] = _response_entry(await _run(services, req, uow, index))
    return FhirResponse(
        200, bundle("transaction-response", [results[i] for i in range(len(entries))])
    )


async def _run(services: Services, req: FhirRequest, uow: UnitOfWork, index: int) -> FhirResponse:
    try:
        return await dispatch(services, req, uow)
    except FhirError as error:
        error.issues = [
            replace(i, diagnostics=f"Entry {index}: {i.diagnostics}") for i in error.issues
        ]
        raise
