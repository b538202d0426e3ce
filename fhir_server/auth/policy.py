"""The one access decision point: token claims + a FHIR request -> a decision.

Pure (no I/O). The edge (`auth.access`) authenticates the bearer token, asks
`decide` before running the interaction, narrows searches with the returned
parameters, and asks `visible` about each resource it is about to return or
change. Read-side refusals about a single resource answer 404, so a patient
cannot learn which ids exist outside its compartment; scope refusals are 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.auth import roles
from fhir_server.auth.compartment import (
    DIRECTORY_TYPES,
    compartment_params,
    directory_visible,
    in_patient_compartment,
    operation_resources,
    patient_references,
)
from fhir_server.auth.scopes import ResourceScope, ScopeSet
from fhir_server.fhir.resource_types import CONFORMANCE_TYPES
from fhir_server.rest.messages import FhirRequest

_OPEN_TYPES = frozenset((*CONFORMANCE_TYPES, "OperationDefinition"))
_NEEDS = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "history-type": "r",
    "search": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
}
_CHANGES = frozenset({"create", "update", "patch", "delete"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class TokenContext:
    """What a validated access token says: who, for which client, with what grant."""

    scopes: ScopeSet
    client_id: str
    sub: str | None = None
    patient: str | None = None
    fhir_user: str | None = None
    jti: str | None = None
    role: str | None = None  # the account's role (auth.roles); None for a backend service
    actors: tuple[str, ...] = ()  # a practitioner's own references (auth.role_checks)


@dataclass(frozen=True)
class Interaction:
    kind: str
    resource_type: str | None = None
    rid: str | None = None
    conditional: bool = False


@dataclass(frozen=True)
class Decision:
    """Allowed, or refused with a status; how to narrow and what to check on resources."""

    status: int = 200
    reason: str = ""
    search_params: tuple[tuple[str, str], ...] = ()
    patient: str | None = None  # results must lie in this patient's compartment
    scope_params: tuple[tuple[str, str], ...] = ()  # a ?param= restriction of the scope

    @property
    def allowed(self) -> bool:
        return self.status == 200


def _deny(status: int, reason: str) -> Decision:
    return Decision(status=status, reason=reason)


def classify(req: FhirRequest) -> Interaction:
    """Which interaction a request is, from its method and path alone."""
    path, method = req.path, req.method
    if not path:
        return Interaction("batch" if method == "POST" else "search-system")
    head = path[0]
    if head.startswith("$"):
        return Interaction("operation-system")
    if head == "_history":
        return Interaction("history-system")
    if head in _OPEN_TYPES or head == "metadata":
        return Interaction("conformance", head)
    rest = path[1:]
    if not rest:
        kind = {"GET": "search", "POST": "create", "PUT": "update", "DELETE": "delete"}
        return Interaction(
            kind.get(method, "unknown"), head, conditional=method in ("PUT", "DELETE")
        )
    first = rest[0]
    if first == "_search":
        return Interaction("search", head)
    if first == "_history":
        return Interaction("history-type", head)
    if first.startswith("$"):
        return Interaction("operation-type", head)
    if len(rest) == 1:
        kind = {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        return Interaction(kind.get(method, "unknown"), head, first)
    if rest[1].startswith("$"):
        return Interaction("operation-instance", head, first)
    if rest[1] == "_history":
        return Interaction("vread" if len(rest) == 3 else "history-instance", head, first)
    return Interaction("unknown", head, first)


def _needed(interaction: Interaction, method: str) -> str:
    if interaction.kind == "operation-type":
        return "r" if method == "GET" else "c"
    if interaction.kind == "operation-instance":
        return "r" if method == "GET" else "u"
    return _NEEDS.get(interaction.kind, "r")


def _best(scopes: list[ResourceScope]) -> ResourceScope:
    """An unrestricted scope wins over ones with `?param=` filters."""
    return next((s for s in scopes if not s.params), scopes[0])


def decide(ctx: TokenContext, req: FhirRequest) -> Decision:
    return roles.applied(_by_scopes(ctx, req), roles.judge(ctx, classify(req), req))


def _by_scopes(ctx: TokenContext, req: FhirRequest) -> Decision:
    interaction = classify(req)
    kind, rtype = interaction.kind, interaction.resource_type
    if kind == "conformance":
        return Decision()
    if kind == "batch":
        return Decision()  # every entry is decided on its own
    if kind in ("search-system", "history-system", "operation-system"):
        return _system_level(ctx, req, kind)
    if rtype is None or kind == "unknown":
        return Decision()  # routing answers 404/405 for these
    permission = _needed(interaction, req.method)
    broad = ctx.scopes.matching(rtype, permission, ("user", "system"))
    if broad:
        return _with_scope_filter(_best(broad), permission)
    narrow_scopes = ctx.scopes.matching(rtype, permission, ("patient",))
    if not narrow_scopes:
        return _deny(403, f"The token's scopes do not allow this interaction on {rtype}.")
    if ctx.patient is None:
        return _deny(403, "A patient/ scope needs a patient in the launch context.")
    decision = _with_scope_filter(_best(narrow_scopes), permission)
    if not decision.allowed:
        return decision
    return _in_compartment(ctx.patient, interaction, req, decision)


def _with_scope_filter(scope: ResourceScope, permission: str) -> Decision:
    if scope.params and permission in "cud":
        return _deny(403, "A scope with a ?param= restriction grants no write access.")
    return Decision(
        search_params=scope.params if permission == "s" else (), scope_params=scope.params
    )


def _system_level(ctx: TokenContext, req: FhirRequest, kind: str) -> Decision:
    if ctx.patient is not None and not ctx.scopes.matching("*", "s", ("user", "system")):
        return _deny(403, "A patient-context token cannot use system-wide interactions.")
    if kind == "search-system":
        types = [t for t in (req.param("_type") or "").split(",") if t]
        if types and all(ctx.scopes.matching(t, "s", ("user", "system")) for t in types):
            return Decision()
    wildcard = ctx.scopes.matching("*", "r", ("user", "system"))
    if wildcard and any(s.resource_type == "*" and not s.params for s in wildcard):
        return Decision()
    return _deny(403, "System-wide interactions need a user/*.rs or system/*.rs scope.")


def _in_compartment(
    patient: str, interaction: Interaction, req: FhirRequest, base: Decision
) -> Decision:
    kind, rtype = interaction.kind, interaction.resource_type or ""
    compartment = compartment_params()
    directory = rtype in DIRECTORY_TYPES
    if not directory and rtype not in compartment and rtype != "Patient":
        return _deny(403, f"{rtype} is outside the patient's compartment.")
    if directory:
        if kind in _CHANGES:
            return _deny(403, f"A patient token cannot change {rtype} resources.")
        if req.method in _BODY_METHODS and patient_references(req.body) - {f"Patient/{patient}"}:
            return _deny(403, "A patient token cannot act for another patient.")
        if rtype == "Slot" and kind == "history-type":
            return _deny(403, "Slot history is not available to a patient token.")
        extra = (("status", "free"),) if rtype == "Slot" and kind == "search" else ()
        return Decision(search_params=base.search_params + extra, patient=patient)
    if interaction.conditional or kind == "history-type":
        return _deny(403, f"This interaction on {rtype} cannot be limited to one patient.")
    if rtype == "Patient" and kind == "create":
        return _deny(403, "A patient token cannot create Patient resources.")
    others = patient_references(req.body) - {f"Patient/{patient}"}
    if req.method in _BODY_METHODS and others:
        return _deny(403, "A patient token cannot act for another patient.")
    if kind == "operation-type" and req.method in _BODY_METHODS:
        for resource in operation_resources(req.body):
            if resource.get("resourceType") == rtype and not in_patient_compartment(
                resource, patient
            ):
                return _deny(403, f"The {rtype} given to the operation must name the patient.")
    if (
        kind == "create"
        and isinstance(req.body, dict)
        and not in_patient_compartment({**req.body, "resourceType": rtype}, patient)
    ):
        return _deny(403, f"The new {rtype} must name the token's patient.")
    if (
        kind == "update"
        and isinstance(req.body, dict)
        and not in_patient_compartment(
            {**req.body, "resourceType": rtype, "id": interaction.rid}, patient
        )
    ):
        return _deny(403, f"The {rtype} must keep naming the token's patient.")
    search = base.search_params
    if kind == "search":
        search += _compartment_search(rtype, patient)
    return Decision(search_params=search, patient=patient, scope_params=base.scope_params)


def _compartment_search(rtype: str, patient: str) -> tuple[tuple[str, str], ...]:
    if rtype == "Patient":
        return (("_id", patient),)
    param = compartment_params()[rtype][0]
    return ((param, f"Patient/{patient}"),)


def visible(decision: Decision, resource: dict[str, Any]) -> bool:
    """May a resource be returned (or changed) under this decision?"""
    if decision.patient is None:
        return True
    if resource.get("resourceType") in DIRECTORY_TYPES:
        return directory_visible(resource)
    return in_patient_compartment(resource, decision.patient)
