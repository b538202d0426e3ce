"""The FHIR RESTful interactions on stored resource types, one short function each.

Each checks the request, calls the store (or the searcher) once or twice and
returns a `FhirResponse`; failures are raised as `fhir.errors` and turned into
an OperationOutcome in one place (`rest.http`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import jsonpatch

from fhir_server.fhir.errors import (
    BadRequest,
    Issue,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    operation_outcome,
)
from fhir_server.fhir.instants import parse_instant
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.routing import check_id
from fhir_server.fhir.validation import validate_resource
from fhir_server.rest.bundles_common import bundle, full_url, history_entry
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.prefer import preference
from fhir_server.rest.services import DeleteContext, Services, WriteContext
from fhir_server.rest.versioning import not_modified, parse_etag, version_headers
from fhir_server.store.clock import to_instant
from fhir_server.store.resources import Version
from fhir_server.store.unit_of_work import UnitOfWork


def checked_body(req: FhirRequest, resource_type: str) -> dict[str, Any]:
    """The request body as a resource of the URL's type, validated."""
    body = req.body
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a FHIR resource (a JSON object).")
    actual = body.get("resourceType")
    if actual is None:
        raise BadRequest("The resource has no resourceType.", expression=("resourceType",))
    if actual != resource_type:
        raise BadRequest(
            f"The body's resourceType is not {resource_type}, the type the URL names.",
            expression=("resourceType",),
        )
    validate_resource(body)
    return body


def _expected_version(req: FhirRequest) -> int | None:
    value = req.header("if-match")
    return parse_etag(value) if value else None


def _informational(text: str) -> dict[str, Any]:
    return operation_outcome([Issue("informational", text, severity="information")])


def written(req: FhirRequest, services: Services, version: Version, status: int) -> FhirResponse:
    """The answer to a successful write, shaped by `Prefer: return=`."""
    headers = version_headers(version)
    url = full_url(services.base_url, version.resource_type, version.id)
    headers["Location" if status == 201 else "Content-Location"] = (
        f"{url}/_history/{version.version}"
    )
    wanted = preference(req.header("prefer"), "return") or "representation"
    if wanted == "minimal":
        return FhirResponse(status, None, headers)
    if wanted == "OperationOutcome":
        return FhirResponse(status, _informational("Done."), headers)
    return FhirResponse(status, version.resource, headers)


async def read(
    services: Services, req: FhirRequest, rtype: str, rid: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    version = await services.store.read(rtype, rid, uow)
    if not_modified(version, req.header("if-none-match"), req.header("if-modified-since")):
        return FhirResponse(304, None, version_headers(version))
    return FhirResponse(200, version.resource, version_headers(version))


async def vread(
    services: Services, req: FhirRequest, rtype: str, rid: str, vid: str
) -> FhirResponse:
    if not vid.isdigit():
        raise NotFound(f"{rtype}/{rid} has no version {vid!r:.20}.")
    version = await services.store.vread(rtype, rid, int(vid))
    return FhirResponse(200, version.resource, version_headers(version))


async def single_match(
    services: Services, rtype: str, params: list[tuple[str, str]], limits: ReadLimits | None
) -> str | None:
    """The one current resource matching a conditional request's criteria, if any,
    among those the caller may read (so the answer reveals nothing else)."""
    if not params:
        raise BadRequest("A conditional request needs search parameters.")
    ids = await services.searcher.matching_ids(rtype, params, limits)
    if len(ids) > 1:
        raise PreconditionFailed("More than one resource matches the condition.")
    return ids[0] if ids else None


async def existing_match(services: Services, req: FhirRequest, rtype: str) -> str | None:
    """The id the request's If-None-Exist condition finds (412 when it finds more than
    one), or else the one the type's duplicate check finds (a Patient's certain $match);
    None when it has no condition or finds nothing the caller may read."""
    condition = req.header("if-none-exist")
    if condition is None:
        return None
    criteria = parse_qsl(condition, keep_blank_values=True)
    found = await single_match(services, rtype, criteria, req.limits)
    duplicate_check = services.duplicate_checks.get(rtype)
    if found is None and duplicate_check is not None:
        return await duplicate_check(services, req)
    return found


async def create(
    services: Services, req: FhirRequest, rtype: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    body = checked_body(req, rtype)
    existing = await existing_match(services, req, rtype)
    if existing is not None:
        return written(req, services, await services.store.read(rtype, existing, uow), 200)
    return await _create(services, req, body, uow)


async def _create(
    services: Services, req: FhirRequest, body: dict[str, Any], uow: UnitOfWork | None
) -> FhirResponse:
    """A new resource with a server-assigned id (by the type's domain engine, if it has one)."""
    hooked = await _hooked(services, req, body, None, uow)
    version = (
        hooked[0] if hooked else await services.store.create(body, rid=req.assigned_id, uow=uow)
    )
    return written(req, services, version, 201)


async def _hooked(
    services: Services,
    req: FhirRequest,
    body: dict[str, Any],
    expected: int | None,
    uow: UnitOfWork | None,
) -> tuple[Version, bool] | None:
    """The write as done by a domain engine registered for the type (booking), if any."""
    hook = services.write_hooks.get(body["resourceType"])
    context = WriteContext(services, req, expected_version=expected, uow=uow, body=body)
    return await hook(context) if hook else None


async def update(
    services: Services, req: FhirRequest, rtype: str, rid: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    check_id(rid)
    body = checked_body(req, rtype)
    if body.get("id") != rid:
        raise BadRequest(
            "The resource id must be present and equal the id in the URL.",
            expression=(f"{rtype}.id",),
        )
    expected = _expected_version(req)
    hooked = await _hooked(services, req, body, expected, uow)
    version, created = hooked or await services.store.update(
        body, expected_version=expected, uow=uow
    )
    return written(req, services, version, 201 if created else 200)


async def conditional_update(
    services: Services, req: FhirRequest, rtype: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    match = await single_match(services, rtype, _criteria(req), req.limits)
    body = checked_body(req, rtype)
    if match is None:
        if "id" in body:
            return await update(services, req, rtype, check_id(str(body["id"])), uow)
        return await _create(services, req, body, uow)
    if body.get("id", match) != match:
        raise BadRequest(
            "The resource id differs from the id of the matching resource.",
            expression=(f"{rtype}.id",),
        )
    req.body = {**body, "id": match}
    return await update(services, req, rtype, match, uow)


def _apply_patch(current: Version, operations: list[Any]) -> dict[str, Any]:
    """The patched resource, with the stored meta minus what the store stamps anew."""
    assert current.resource is not None
    try:
        patched = jsonpatch.apply_patch(current.resource, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError):
        raise Unprocessable("The JSON Patch could not be applied to the resource.") from None
    identity = (current.resource_type, current.id)
    if (
        not isinstance(patched, dict)
        or (patched.get("resourceType"), patched.get("id")) != identity
    ):
        raise Unprocessable("A patch may not change the resource type or id.")
    meta = {
        k: v
        for k, v in current.resource.get("meta", {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    patched.pop("meta", None)
    return {**patched, "meta": meta} if meta else patched


async def patch(
    services: Services, req: FhirRequest, rtype: str, rid: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    if not isinstance(req.body, list):
        raise BadRequest("A patch body must be a JSON Patch document (a JSON array).")
    current = await services.store.read(rtype, rid, uow)
    expected = _expected_version(req)
    if expected is not None and expected != current.version:
        raise PreconditionFailed(f"{rtype}/{rid} is at version {current.version}, not {expected}.")
    patched = _apply_patch(current, req.body)
    validate_resource(patched)
    hooked = await _hooked(services, req, patched, current.version, uow)
    version, _ = hooked or await services.store.update(
        patched, expected_version=current.version, uow=uow
    )
    return written(req, services, version, 200)


async def delete(
    services: Services, req: FhirRequest, rtype: str, rid: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    current = await services.store.current(rtype, rid, uow)
    if current is None:
        raise NotFound(f"{rtype}/{rid} is not known.")
    expected = _expected_version(req)
    hook = services.delete_hooks.get(rtype)
    if hook is not None and not current.deleted:
        context = DeleteContext(services, req, expected_version=expected, uow=uow, current=current)
        version = await hook(context)
    else:
        version = await services.store.delete(rtype, rid, expected_version=expected, uow=uow)
    headers = {"ETag": version.etag} if version else {}
    return FhirResponse(200, _informational("Deleted."), headers)


async def conditional_delete(
    services: Services, req: FhirRequest, rtype: str, uow: UnitOfWork | None = None
) -> FhirResponse:
    match = await single_match(services, rtype, _criteria(req), req.limits)
    if match is None:
        return FhirResponse(204)
    return await delete(services, req, rtype, match, uow)


# Parameters that shape the answer rather than select the resource.
_RESULT_PARAMETERS = frozenset({"_format", "_pretty", "_summary", "_elements"})


def _criteria(req: FhirRequest) -> list[tuple[str, str]]:
    """The search criteria of a conditional update or delete, still decoded as pairs."""
    return [(k, v) for k, v in req.params if k not in _RESULT_PARAMETERS]


async def history(
    services: Services, req: FhirRequest, rtype: str | None = None, rid: str | None = None
) -> FhirResponse:
    if rtype and rid and await services.store.current(rtype, rid) is None:
        raise NotFound(f"{rtype}/{rid} is not known.")
    count = _count(services, req.param("_count"))
    since = _since(req.param("_since"))
    page = await services.store.history_page(
        resource_type=rtype, rid=rid, since=since, before=req.param("_before"), count=count
    )
    path = "/".join(p for p in (rtype, rid, "_history") if p)
    query: list[tuple[str, str]] = [("_count", str(count))]
    if since:
        query.append(("_since", since))
    links = [{"relation": "self", "url": f"{services.base_url}/{path}?{urlencode(query)}"}]
    if page.next_cursor:
        query.append(("_before", page.next_cursor))
        links.append({"relation": "next", "url": f"{services.base_url}/{path}?{urlencode(query)}"})
    entries = [history_entry(services.base_url, row) for row in page.rows]
    return FhirResponse(200, bundle("history", entries, total=page.total, link=links))


def _count(services: Services, raw: str | None) -> int:
    if raw is None:
        return services.settings.default_page_size
    if not raw.isdigit():
        raise BadRequest("_count must be a whole number.", expression=("_count",))
    return min(int(raw), services.settings.max_page_size)


def _since(raw: str | None) -> str | None:
    """The `_since` instant as the store writes them; a `+` sent unencoded arrives as a space."""
    if raw is None:
        return None
    try:
        moment = parse_instant(raw.strip().replace(" ", "+"))
    except ValueError:
        raise BadRequest("_since must be a FHIR instant.", expression=("_since",)) from None
    if moment.tzinfo is None:
        raise BadRequest("_since must include a time zone.", expression=("_since",))
    return to_instant(moment)
