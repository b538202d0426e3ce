"""Batch and transaction Bundles.

A transaction runs every entry in one unit of work, in the order the spec
gives (DELETE, POST, PUT/PATCH, GET), after giving each POST its id up front so
`urn:uuid:` references between entries can be rewritten; any failure undoes
all of it and answers with that entry's OperationOutcome. A batch runs each
entry on its own and reports each result, error or not, in its entry.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from fhir_server.fhir.errors import BadRequest, FhirError, PayloadTooLarge
from fhir_server.rest.bundles_common import bundle
from fhir_server.rest.dispatch import dispatch
from fhir_server.rest.interactions import existing_match
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.services import Services
from fhir_server.store.unit_of_work import UnitOfWork

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_CONDITIONAL_HEADERS = (
    ("ifMatch", "if-match"),
    ("ifNoneExist", "if-none-exist"),
    ("ifNoneMatch", "if-none-match"),
    ("ifModifiedSince", "if-modified-since"),
)


def _entry_request(
    entry: dict[str, Any], index: int, base_url: str, auth: Any = None
) -> FhirRequest:
    request = entry.get("request") if isinstance(entry, dict) else None
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
    headers = {name: str(request[key]) for key, name in _CONDITIONAL_HEADERS if key in request}
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
    except (ValueError, TypeError):  # bad base64 (binascii.Error) or JSON, or no string
        raise BadRequest(
            "The Binary data is not a base64 JSON Patch.", expression=(where,)
        ) from None


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _response_entry(response: FhirResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"status": _status(response.status)}
    if "Location" in response.headers:
        out["location"] = response.headers["Location"]
    if "ETag" in response.headers:
        out["etag"] = response.headers["ETag"]
    entry: dict[str, Any] = {"response": out}
    if response.resource is not None:
        if response.resource.get("resourceType") == "OperationOutcome":
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
            results.append(
                {"response": {"status": _status(error.status), "outcome": error.outcome()}}
            )
    return FhirResponse(200, bundle("batch-response", results))


async def _assign_ids(
    services: Services, entries: list[dict[str, Any]], requests: list[FhirRequest]
) -> dict[str, str]:
    """Give each POSTed resource its id now; returns `urn:` fullUrl -> `Type/id`.

    A conditional create that finds its resource resolves to that one instead.
    """
    ids: dict[str, str] = {}
    for entry, req in zip(entries, requests, strict=True):
        if req.method != "POST" or not isinstance(req.body, dict):
            continue
        rtype = str(req.body.get("resourceType"))
        existing = await existing_match(services, req, rtype)
        if existing is None:
            req.assigned_id = existing = str(uuid.uuid4())
        full = entry.get("fullUrl")
        if isinstance(full, str) and full.startswith("urn:"):
            ids[full] = f"{rtype}/{existing}"
    return ids


def _refuse_overlaps(requests: list[FhirRequest]) -> None:
    """The spec fails a transaction whose writes name one resource twice."""
    seen: set[tuple[str, ...]] = set()
    for index, req in enumerate(requests):
        if req.method == "GET" or len(req.path) != 2:
            continue
        target = tuple(req.path)
        if target in seen:
            raise BadRequest(
                "Two entries of the transaction write the same resource.",
                expression=(f"Bundle.entry[{index}].request.url",),
            )
        seen.add(target)


async def _transaction(
    services: Services, entries: list[dict[str, Any]], auth: Any
) -> FhirResponse:
    requests = [_entry_request(e, i, services.base_url, auth) for i, e in enumerate(entries)]
    _refuse_overlaps(requests)
    ids = await _assign_ids(services, entries, requests)
    for req in requests:
        req.body = _rewrite(req.body, ids)
    order = sorted(enumerate(requests), key=lambda pair: _ORDER[pair[1].method])
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
