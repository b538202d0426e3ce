"""Enforcement at the FHIR edge: authenticate, ask the policy, narrow, filter.

`dispatch` hands every request (plain or Bundle entry) to `Access.guard`
with a callable that runs the interaction. The decisions themselves live in
`auth.policy`; this module only gathers the facts the policy needs from the
store (the current version of a resource about to be read or changed) and
applies its answer (extra search parameters, dropped Bundle entries).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from fhir_server.audit.recorder import AuditRecorder
from fhir_server.auth.compartment import compartment_params, operation_mentions
from fhir_server.auth.policy import Decision, TokenContext, classify, decide, visible
from fhir_server.auth.tokens import Tokens, unauthorized
from fhir_server.fhir.errors import Forbidden, NotFound
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.scheduling_hooks import ROLE_HEADER

# Interactions whose answer is checked resource by resource (a conditional create
# can answer with an existing resource: it must not be someone else's).
_CHECKED = frozenset(
    {"read", "vread", "search", "history-instance", "history-type", "create", "update", "patch"}
)
Run = Callable[[FhirRequest], Awaitable[FhirResponse]]


class _Services(Protocol):
    @property
    def store(self) -> Any: ...

    @property
    def searcher(self) -> Any: ...


class Access:
    def __init__(self, tokens: Tokens, audit: AuditRecorder) -> None:
        self.tokens = tokens
        self.audit = audit

    async def authenticate(self, authorization: str | None) -> TokenContext:
        return await self.tokens.authenticate(authorization)

    async def guard(self, services: _Services, req: FhirRequest, run: Run) -> FhirResponse:
        ctx = req.auth
        if not isinstance(ctx, TokenContext):
            raise unauthorized("This server needs a SMART access token (Bearer).", error="")
        decision = decide(ctx, req)
        if not decision.allowed:
            await self._denied(ctx, decision.reason)
            if decision.status == 404:
                raise NotFound(decision.reason)
            raise Forbidden(decision.reason)
        interaction = classify(req)
        if interaction.rid and interaction.resource_type and decision.patient:
            await self._check_current(
                services, ctx, decision, interaction.resource_type, interaction.rid
            )
        if interaction.rid and interaction.resource_type and decision.scope_params:
            await self._check_scope_filter(
                services, decision, interaction.resource_type, interaction.rid
            )
        if decision.patient and interaction.kind.startswith("operation"):
            await self._check_mentions(services, ctx, decision, req)
        if decision.search_params:
            req = replace(req, params=[*req.params, *decision.search_params])
        req = replace(req, headers={**req.headers, ROLE_HEADER: _role(ctx, decision)})
        response = await run(req)
        if decision.patient is not None and interaction.kind in _CHECKED:
            self._filter(decision, response)
        return response

    async def _denied(self, ctx: TokenContext, reason: str) -> None:
        await self.audit.record(
            "access-denied", success=False, who=ctx.sub, client_id=ctx.client_id, detail=reason
        )

    async def _check_current(
        self, services: _Services, ctx: TokenContext, decision: Decision, rtype: str, rid: str
    ) -> None:
        current = await services.store.current(rtype, rid)
        if current is None or current.resource is None:
            return  # the interaction itself answers 404/410 (or creates, checked by policy)
        if not visible(decision, current.resource):
            await self._denied(ctx, f"{rtype} outside the token's patient compartment")
            raise NotFound(f"{rtype}/{rid} is not known.")

    async def _check_mentions(
        self, services: _Services, ctx: TokenContext, decision: Decision, req: FhirRequest
    ) -> None:
        """Every compartment resource an operation's inputs name must be the patient's own."""
        for rtype, rid in operation_mentions(req.body):
            types = [rtype] if rtype else sorted(compartment_params())
            for candidate in types:
                if candidate in compartment_params():
                    await self._check_current(services, ctx, decision, candidate, rid)

    async def _check_scope_filter(
        self, services: _Services, decision: Decision, rtype: str, rid: str
    ) -> None:
        params = [("_id", rid), *decision.scope_params]
        if not await services.searcher.matching_ids(rtype, params):
            raise NotFound(f"{rtype}/{rid} is not known.")

    def _filter(self, decision: Decision, response: FhirResponse) -> None:
        resource = response.resource
        if resource is None:
            return
        if resource.get("resourceType") == "Bundle":
            entries = resource.get("entry") or []
            kept = [e for e in entries if _entry_visible(decision, e)]
            if len(kept) != len(entries):
                resource["entry"] = kept
                if not kept:
                    del resource["entry"]  # R4 JSON has no empty arrays
            return
        if resource.get("resourceType") != "OperationOutcome" and not visible(decision, resource):
            raise NotFound("The resource is not known.")


def _role(ctx: TokenContext, decision: Decision) -> str:
    """The booking role the token stands for; a client's own role header is never trusted."""
    if decision.patient is not None or (ctx.fhir_user or "").startswith("Patient/"):
        return "patient"
    if (ctx.fhir_user or "").startswith("Practitioner/"):
        return "practitioner"
    return "staff"


def _entry_visible(decision: Decision, entry: dict[str, Any]) -> bool:
    resource = entry.get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") == "OperationOutcome":
        return True
    return visible(decision, resource)
