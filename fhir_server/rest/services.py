"""What an interaction needs, assembled once in `app.create_app` (the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.resource import Resource
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.settings import Settings
from fhir_server.store.resources import ResourceStore, Version
from fhir_server.store.unit_of_work import UnitOfWork


class Searcher(Protocol):
    """The search engine as the REST edge sees it.

    `limits` (None when auth is off) are what the caller may read: every query
    made for it, down to each chain and `_has` link and include, carries them.
    """

    async def search_bundle(
        self,
        resource_type: str | None,
        params: list[tuple[str, str]],
        *,
        strict: bool,
        limits: ReadLimits | None = None,
    ) -> dict[str, Any]:
        """A searchset Bundle for the parameters (paging links included)."""
        ...

    async def matching_ids(
        self,
        resource_type: str,
        params: list[tuple[str, str]],
        limits: ReadLimits | None = None,
    ) -> list[str]:
        """Ids of current resources matching a conditional-interaction query (at most 2)."""
        ...

    async def readable_ids(
        self, resource_type: str, ids: list[str], limits: ReadLimits
    ) -> list[str]:
        """Those of `ids` whose current resource meets the limits' criteria for the type."""
        ...

    def capability(self, resource_type: str) -> dict[str, Any]:
        """CapabilityStatement.rest.resource fields: searchParam, searchInclude, ..."""
        ...


OperationHandler = Callable[["Services", FhirRequest], Awaitable[FhirResponse]]


@dataclass(frozen=True)
class HookContext:
    """What every write or delete hook is given, in one object (HAPI's pointcut parameters).

    `expected_version` is the version the client's If-Match (or a patch) names,
    None when the write is unconditional; `uow` is the caller's unit of work (a
    transaction Bundle's), None when the hook may open its own.
    """

    services: Services
    request: FhirRequest
    expected_version: int | None
    uow: UnitOfWork | None

    @property
    def store(self) -> ResourceStore:
        return self.services.store


@dataclass(frozen=True)
class WriteContext(HookContext):
    """A create or update: `body` is the validated resource to write."""

    body: Resource


@dataclass(frozen=True)
class DeleteContext(HookContext):
    """A delete: `current` is the stored version about to be deleted."""

    current: Version


WriteHook = Callable[[WriteContext], Awaitable[tuple[Version, bool] | None]]
"""A domain engine that takes over create/update writes of one resource type (the
booking engine for Appointment): it returns (version, created), or None to let the
plain store write happen, or refuses with a FhirError."""

DeleteHook = Callable[[DeleteContext], Awaitable[Version | None]]
"""A domain engine that takes over deletes of one resource type (the booking engine
frees the Slots of a deleted Appointment): it deletes in the unit of work, or refuses
with a FhirError."""


DuplicateCheck = Callable[["Services", FhirRequest], Awaitable[str | None]]
"""For a conditional create whose criteria found nothing: the id of a stored resource
the new one certainly duplicates (answered as a match found), or None to create it."""


class AccessGuard(Protocol):
    """The access policy at the edge (`auth.access.Access`); absent when auth is off."""

    async def authenticate(self, authorization: str | None) -> Any:
        """The token context for an Authorization header; raises Unauthorized."""
        ...

    async def guard(
        self,
        services: Any,
        req: FhirRequest,
        run: Callable[[FhirRequest], Awaitable[FhirResponse]],
    ) -> FhirResponse:
        """Run the interaction if the token allows it, narrowed and filtered as needed."""
        ...


@dataclass(frozen=True)
class OperationKey:
    """Where an operation is invoked: system, type or instance level, and its name."""

    name: str
    resource_type: str | None = None
    instance: bool = False


@dataclass(frozen=True)
class Operation:
    """A custom operation: its published OperationDefinition and its handler."""

    definition: dict[str, Any]
    handler: OperationHandler
    # A public system operation runs as this caller (an `auth.policy.TokenContext`) whoever
    # calls it, with or without a token; None for every other operation.
    public: Any = None

    def invocations(self) -> list[OperationKey]:
        name = self.definition["code"]
        keys = [OperationKey(name)] if self.definition.get("system") else []
        for rtype in self.definition.get("resource", []):
            if self.definition.get("type"):
                keys.append(OperationKey(name, rtype))
            if self.definition.get("instance"):
                keys.append(OperationKey(name, rtype, instance=True))
        return keys


@dataclass
class Services:
    settings: Settings
    store: ResourceStore
    searcher: Searcher
    operations: list[Operation] = field(default_factory=list)
    access: AccessGuard | None = None
    # CapabilityStatement.rest.security (SMART service and oauth-uris), when auth is on.
    security: dict[str, Any] | None = None
    write_hooks: dict[str, WriteHook] = field(default_factory=dict)
    delete_hooks: dict[str, DeleteHook] = field(default_factory=dict)
    duplicate_checks: dict[str, DuplicateCheck] = field(default_factory=dict)

    def operation(self, key: OperationKey) -> Operation | None:
        for operation in self.operations:
            if key in operation.invocations():
                return operation
        return None

    def public_caller(self, path: list[str]) -> Any:
        """The caller a public system operation named by `path` runs as, else None."""
        if len(path) != 1 or not path[0].startswith("$"):
            return None
        operation = self.operation(OperationKey(path[0][1:]))
        return operation.public if operation is not None else None

    @property
    def base_url(self) -> str:
        return self.settings.base_url
