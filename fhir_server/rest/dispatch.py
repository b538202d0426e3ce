"""Route a `FhirRequest` (from HTTP or from a Bundle entry) to its interaction."""

from __future__ import annotations

from fhir_server.fhir.errors import BadRequest, MethodNotAllowed, NotFound
from fhir_server.fhir.resource_types import CONFORMANCE_TYPES, SERVED_TYPES
from fhir_server.rest import interactions as i
from fhir_server.rest.audit_events import admit
from fhir_server.rest.conformance import conformance_resources, read_conformance, search_conformance
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.prefer import preference
from fhir_server.rest.services import OperationKey, Services
from fhir_server.store.audit_store import AUDIT_EVENT
from fhir_server.store.unit_of_work import UnitOfWork

_SERVED = frozenset(SERVED_TYPES)
_CONFORMANCE = frozenset((*CONFORMANCE_TYPES, "OperationDefinition"))


def _not_allowed(req: FhirRequest, what: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"{req.method} is not supported on {what}.")


async def dispatch(
    services: Services, req: FhirRequest, uow: UnitOfWork | None = None
) -> FhirResponse:
    if services.access is not None:
        return await services.access.guard(services, req, lambda r: _route(services, r, uow))
    return await _route(services, req, uow)


async def _route(services: Services, req: FhirRequest, uow: UnitOfWork | None) -> FhirResponse:
    path, method = req.path, req.method
    if not path:
        raise BadRequest("Batch and transaction Bundles are handled by the system endpoint.")
    head = path[0]
    if head.startswith("$"):
        return await _operation(services, req, OperationKey(head[1:]))
    if head == "_history" and len(path) == 1:
        if method != "GET":
            raise _not_allowed(req, "system history")
        return await i.history(services, req)
    if head == "metadata":  # GET has its own route; any other method lands here
        raise _not_allowed(req, "metadata")
    if head in _CONFORMANCE:
        return _conformance(services, req)
    if head == AUDIT_EVENT:
        admit(req)  # an admin's read or search; nothing else, for anyone
    elif head not in _SERVED:
        raise NotFound(f"Resource type {head!r:.40} is not served here.")
    return await _on_type(services, req, head, path[1:], uow)


_TYPE_WRITES = {
    "POST": i.create,
    "PUT": i.conditional_update,
    "DELETE": i.conditional_delete,
}
_INSTANCE = {"GET": i.read, "PUT": i.update, "PATCH": i.patch, "DELETE": i.delete}


async def _on_type(
    services: Services, req: FhirRequest, rtype: str, rest: list[str], uow: UnitOfWork | None
) -> FhirResponse:
    if not rest:
        if req.method == "GET":
            return await _search(services, req, rtype)
        write = _TYPE_WRITES.get(req.method)
        if write is None:
            raise _not_allowed(req, rtype)
        return await write(services, req, rtype, uow)
    first = rest[0]
    if len(rest) == 1 and first in ("_search", "_history"):
        return await _type_query(services, req, rtype, first)
    if first.startswith("$") and len(rest) == 1:
        return await _operation(services, req, OperationKey(first[1:], rtype))
    return await _on_instance(services, req, rtype, i.check_id(first), rest[1:], uow)


async def _type_query(services: Services, req: FhirRequest, rtype: str, what: str) -> FhirResponse:
    """`[type]/_search` (POST) and `[type]/_history` (GET)."""
    if what == "_search":
        if req.method != "POST":
            raise _not_allowed(req, f"{rtype}/_search")
        return await _search(services, req, rtype)
    if req.method != "GET":
        raise _not_allowed(req, f"{rtype}/_history")
    return await i.history(services, req, rtype)


async def _on_instance(
    services: Services,
    req: FhirRequest,
    rtype: str,
    rid: str,
    rest: list[str],
    uow: UnitOfWork | None,
) -> FhirResponse:
    if not rest:
        handler = _INSTANCE.get(req.method)
        if handler is None:
            raise _not_allowed(req, f"{rtype}/[id]")
        return await handler(services, req, rtype, rid, uow)
    if rest[0].startswith("$") and len(rest) == 1:
        return await _operation(services, req, OperationKey(rest[0][1:], rtype, instance=True))
    if rest[0] != "_history" or len(rest) > 2:
        raise NotFound("No such endpoint.")
    if req.method != "GET":
        raise _not_allowed(req, f"{rtype}/[id]/_history")
    if len(rest) == 1:
        return await i.history(services, req, rtype, rid)
    return await i.vread(services, req, rtype, rid, rest[1])


async def _search(services: Services, req: FhirRequest, rtype: str) -> FhirResponse:
    strict = preference(req.header("prefer"), "handling") == "strict"
    return FhirResponse(
        200, await services.searcher.search_bundle(rtype, req.params, strict=strict)
    )


async def _operation(services: Services, req: FhirRequest, key: OperationKey) -> FhirResponse:
    operation = services.operation(key)
    if operation is None:
        raise NotFound(f"Operation ${key.name} is not supported here.")
    return await operation.handler(services, req)


def _conformance(services: Services, req: FhirRequest) -> FhirResponse:
    rtype = req.path[0]
    if req.method != "GET" and not (req.method == "POST" and req.path[1:] == ["_search"]):
        raise _not_allowed(req, f"{rtype} (read-only)")
    definitions = [op.definition for op in services.operations]
    resources = conformance_resources(rtype, {"OperationDefinition": definitions})
    if len(req.path) == 2 and req.path[1] != "_search":
        return FhirResponse(200, read_conformance(resources, rtype, req.path[1]))
    if len(req.path) > 2:
        raise NotFound("No such endpoint.")
    return FhirResponse(200, search_conformance(resources, rtype, req.params, services.base_url))
