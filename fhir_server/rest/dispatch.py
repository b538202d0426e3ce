"""Run a `FhirRequest` (from HTTP or from a Bundle entry) as the interaction it is.

Which interaction a request is comes from the route table (`fhir.routing`),
read through `req.interaction`; the access gate reads the same value, so the
two cannot disagree. Each handler below is a line or two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from fhir_server.fhir.errors import BadRequest, NotFound
from fhir_server.fhir.routing import Interaction
from fhir_server.rest import interactions as i
from fhir_server.rest.audit_events import admit
from fhir_server.rest.conformance import conformance_resources, read_conformance, search_conformance
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.prefer import preference
from fhir_server.rest.services import OperationKey, Services
from fhir_server.store.audit_store import AUDIT_EVENT
from fhir_server.store.unit_of_work import UnitOfWork

Handler = Callable[[Services, FhirRequest, Interaction, UnitOfWork | None], Awaitable[FhirResponse]]


async def dispatch(
    services: Services, req: FhirRequest, uow: UnitOfWork | None = None
) -> FhirResponse:
    _as_defined(services, req)
    if services.access is not None:
        return await services.access.guard(services, req, lambda r: _route(services, r, uow))
    return await _route(services, req, uow)


def _as_defined(services: Services, req: FhirRequest) -> None:
    """An operation POSTed whose OperationDefinition says `affectsState: false` (`$match`,
    `$evaluate-measure`, `$find`: POST only carries their Parameters) is a read, as it is
    with GET: the gate then asks for a read scope, not a write one. The route table alone
    cannot tell (it sees only the method); the definitions are registered here."""
    interaction = req.interaction
    if not (interaction.changes and interaction.operation):
        return
    key = OperationKey(
        interaction.operation, interaction.resource_type, instance=interaction.rid is not None
    )
    operation = services.operation(key)
    if operation is not None and operation.definition.get("affectsState") is False:
        req.interaction = replace(interaction, changes=False)


async def _route(services: Services, req: FhirRequest, uow: UnitOfWork | None) -> FhirResponse:
    interaction = req.interaction
    if interaction.error is not None:
        raise interaction.error
    if interaction.resource_type == AUDIT_EVENT:
        admit(req)  # an admin's read or search; nothing else, for anyone
    return await _HANDLERS[interaction.kind](services, req, interaction, uow)


def _rtype(interaction: Interaction) -> str:
    assert interaction.resource_type is not None  # the route table bound it
    return interaction.resource_type


def _rid(interaction: Interaction) -> str:
    assert interaction.rid is not None
    return interaction.rid


async def _system_entry(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    raise BadRequest("Batch and transaction Bundles are handled by the system endpoint.")


async def _search(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    strict = preference(req.header("prefer"), "handling") == "strict"
    bundle = await services.searcher.search_bundle(
        _rtype(interaction), req.params, strict=strict, limits=req.limits
    )
    return FhirResponse(200, bundle)


async def _create(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    return await i.create(services, req, _rtype(interaction), uow)


async def _update(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    if interaction.conditional:
        return await i.conditional_update(services, req, _rtype(interaction), uow)
    return await i.update(services, req, _rtype(interaction), _rid(interaction), uow)


async def _delete(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    if interaction.conditional:
        return await i.conditional_delete(services, req, _rtype(interaction), uow)
    return await i.delete(services, req, _rtype(interaction), _rid(interaction), uow)


async def _read(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    return await i.read(services, req, _rtype(interaction), _rid(interaction), uow)


async def _patch(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    return await i.patch(services, req, _rtype(interaction), _rid(interaction), uow)


async def _vread(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    version = interaction.version or ""
    return await i.vread(services, req, _rtype(interaction), _rid(interaction), version)


async def _history(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    return await i.history(services, req, interaction.resource_type, interaction.rid)


async def _operation(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    name = interaction.operation or ""
    key = OperationKey(name, interaction.resource_type, instance=interaction.rid is not None)
    operation = services.operation(key)
    if operation is None:
        raise NotFound(f"Operation ${name} is not supported here.")
    return await operation.handler(services, req)


async def _conformance(
    services: Services, req: FhirRequest, interaction: Interaction, uow: UnitOfWork | None
) -> FhirResponse:
    rtype = _rtype(interaction)
    definitions = [op.definition for op in services.operations]
    resources = conformance_resources(rtype, {"OperationDefinition": definitions})
    if interaction.rid is not None:
        return FhirResponse(200, read_conformance(resources, rtype, interaction.rid))
    return FhirResponse(200, search_conformance(resources, rtype, req.params, services.base_url))


_HANDLERS: dict[str, Handler] = {
    "batch": _system_entry,
    "search-system": _system_entry,
    "search": _search,
    "create": _create,
    "update": _update,
    "delete": _delete,
    "read": _read,
    "vread": _vread,
    "patch": _patch,
    "history-system": _history,
    "history-type": _history,
    "history-instance": _history,
    "operation-system": _operation,
    "operation-type": _operation,
    "operation-instance": _operation,
    "conformance": _conformance,
}
