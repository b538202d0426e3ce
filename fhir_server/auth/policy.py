"""The one access decision point: token claims + a FHIR request -> a decision.

Pure (no I/O). Two questions, both asked by the gate (`auth.access`):

- `decide`: may this token run this interaction (the route table's reading of
  the request, `req.interaction`)? Scope refusals are 403; read-side refusals
  about a single resource answer 404, so a patient cannot learn which ids
  exist outside its compartment.
- `read_limits` / `visible`: what may it read? `read_limits` gives, per
  type, the criteria every query made for the token carries (the way in:
  searches, chains, `_has`, includes, conditional criteria); `visible` judges
  a resource about to leave the server (the way out).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from fhir_server.auth import roles
from fhir_server.auth.admin import is_admin
from fhir_server.auth.compartment import (
    DIRECTORY_TYPES,
    compartment_params,
    directory_visible,
    in_patient_compartment,
    operation_resources,
    patient_references,
)
from fhir_server.auth.scopes import INTERACTION_LETTER, ResourceScope, ScopeSet
from fhir_server.fhir.messages import FhirRequest
from fhir_server.fhir.read_limits import Pairs, ReadLimits
from fhir_server.fhir.resource_types import ADMIN_TYPES, SERVED_TYPES
from fhir_server.fhir.routing import Interaction

_NEEDS = INTERACTION_LETTER
_CHANGES = frozenset({"create", "update", "patch", "delete"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Operations only a SMART Backend Services token may run (Bulk Data Access: `$export`).
BACKEND_OPERATIONS = frozenset({"export"})


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
    # System-level operations granted by name to a caller without wildcard scopes: the
    # anonymous caller of a public operation (`$bulk-publish`, SMART Scheduling Links).
    operations: frozenset[str] = frozenset()

    @cached_property
    def limits(self) -> ReadLimits:
        """What this token may read (`read_limits`, cut to the role's): a pure function of the
        grant, not of which token carries it, so worked out once per grant in the process
        (every API call builds its TokenContext afresh; the same few grants recur)."""
        grant = replace(self, client_id="", sub=None, jti=None, operations=frozenset())
        return _limits_of(grant)


@dataclass(frozen=True)
class Decision:
    """Allowed, or refused with a status; what to check on the resource an instance names."""

    status: int = 200
    reason: str = ""
    patient: str | None = None  # results must lie in this patient's compartment
    scope_params: Pairs = ()  # a ?param= restriction of the scope

    @property
    def allowed(self) -> bool:
        return self.status == 200


def _deny(status: int, reason: str) -> Decision:
    return Decision(status=status, reason=reason)


def _needed(interaction: Interaction) -> str:
    if interaction.kind == "operation-type":
        return "c" if interaction.changes else "r"
    if interaction.kind == "operation-instance":
        return "u" if interaction.changes else "r"
    return _NEEDS.get(interaction.kind, "r")


def _best(scopes: list[ResourceScope]) -> ResourceScope:
    """An unrestricted scope wins over ones with `?param=` filters."""
    return next((s for s in scopes if not s.params), scopes[0])


def decide(ctx: TokenContext, req: FhirRequest) -> Decision:
    return roles.applied(_by_scopes(ctx, req), roles.judge(ctx, req.interaction, req))


def _by_scopes(ctx: TokenContext, req: FhirRequest) -> Decision:
    interaction = req.interaction
    kind, rtype = interaction.kind, interaction.resource_type
    if kind in ("conformance", "invalid"):
        return Decision()  # open to all; routing answers 400/404/405 for invalid ones
    if kind == "batch":
        return Decision()  # every entry is decided on its own
    if interaction.operation in BACKEND_OPERATIONS:
        return _backend_service(ctx, rtype)
    if kind in ("search-system", "history-system", "operation-system"):
        return _system_level(ctx, req, kind)
    if rtype is None:
        return Decision()
    permission = _needed(interaction)
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


def _backend_service(ctx: TokenContext, rtype: str | None) -> Decision:
    """Bulk export is for SMART Backend Services: a token with system/ read scopes and no
    user or patient behind it. What it exports is cut to its read limits, type by type;
    at Patient or Group level it must read that type."""
    if ctx.patient is not None or ctx.fhir_user or roles.role_of(ctx) is not None:
        return _deny(403, "Bulk export needs a SMART Backend Services token, not a user's.")
    reads = [s for s in ctx.scopes.resources if s.context == "system" and "r" in s.permissions]
    if not reads:
        return _deny(403, "Bulk export needs system/ read scopes (e.g. system/*.rs).")
    if rtype is not None and not ctx.scopes.matching(rtype, "r", ("system",)):
        return _deny(403, f"Bulk export at {rtype} level needs system/{rtype}.r.")
    return Decision()


def _with_scope_filter(scope: ResourceScope, permission: str) -> Decision:
    if scope.params and permission in "cud":
        return _deny(403, "A scope with a ?param= restriction grants no write access.")
    return Decision(scope_params=scope.params)


def _system_level(ctx: TokenContext, req: FhirRequest, kind: str) -> Decision:
    if ctx.patient is not None and not ctx.scopes.matching("*", "s", ("user", "system")):
        return _deny(403, "A patient-context token cannot use system-wide interactions.")
    if kind == "operation-system" and req.interaction.operation in ctx.operations:
        return Decision()  # its outputs still pass `visible` under the caller's read limits
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
        return Decision(patient=patient, scope_params=base.scope_params)
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
    return Decision(patient=patient, scope_params=base.scope_params)


@functools.lru_cache(maxsize=1024)
def _limits_of(grant: TokenContext) -> ReadLimits:
    return roles.read_limits(grant, read_limits(grant))


def read_limits(ctx: TokenContext) -> ReadLimits:
    """Per served type the token may read (r or s), the criteria its queries carry.

    A `user/` or `system/` scope reads a type across patients; a `patient/`
    scope alone confines it to the token's patient (its compartment, or the
    public directory with only free Slots). A scope's `?param=` restriction
    is added to the criteria either way.
    """
    criteria: dict[str, Pairs] = {}
    scoped: set[str] = set()
    confined: set[str] = set()
    for rtype in (*SERVED_TYPES, *ADMIN_TYPES) if is_admin(ctx) else SERVED_TYPES:
        broad = _reading(ctx, rtype, ("user", "system"))
        narrow = _reading(ctx, rtype, ("patient",)) if ctx.patient is not None else []
        if not (broad or narrow):
            continue
        params = _best(broad or narrow).params
        scoped.update([rtype] if params else [])
        if not broad:
            assert ctx.patient is not None
            confinement = _compartment_criteria(rtype, ctx.patient)
            if confinement is None:
                continue
            params += confinement
            confined.add(rtype)
        criteria[rtype] = params
    return ReadLimits(
        criteria, patient=ctx.patient, confined=frozenset(confined), scoped=frozenset(scoped)
    )


def _reading(ctx: TokenContext, rtype: str, contexts: tuple[str, ...]) -> list[ResourceScope]:
    return ctx.scopes.matching(rtype, "r", contexts) + ctx.scopes.matching(rtype, "s", contexts)


def _compartment_criteria(rtype: str, patient: str) -> Pairs | None:
    """The criteria that keep a patient token's queries over a type inside what it may see."""
    if rtype == "Patient":
        return (("_id", patient),)
    if rtype == "Slot":
        return (("status", "free"),)
    if rtype in DIRECTORY_TYPES:
        return ()
    params = compartment_params().get(rtype)
    return ((params[0], f"Patient/{patient}"),) if params else None


def may_change(limits: ReadLimits, resource: dict[str, Any]) -> bool:
    """May the token act on this resource, or see back the one it just wrote or changed?

    Acting needs no read scope (the interaction's own scope was decided; a
    write-only token sees what it sent, with the id the server gave it), but
    the resource must be one it could read, or in its compartment when the
    token has a patient context.
    """
    rtype = resource.get("resourceType")
    if limits.of(str(rtype)) is not None or limits.patient is None:
        return visible(limits, resource)
    return rtype in DIRECTORY_TYPES or in_patient_compartment(resource, limits.patient)


def visible(limits: ReadLimits, resource: dict[str, Any]) -> bool:
    """May a resource leave the server for a token with these limits?

    A stored resource's type must be readable and, where the token is confined
    to its patient, lie in the compartment (or the public directory). A
    resource of no stored type or without an id (an operation's proposal, a
    Parameters) must name no other patient. A scope's `?param=` criteria are
    checked by a query (`ReadLimits.scoped`), not here.
    """
    rtype = resource.get("resourceType")
    patient = limits.patient
    if rtype in SERVED_TYPES and isinstance(resource.get("id"), str):
        if limits.of(str(rtype)) is None:
            return False
        if rtype not in limits.confined or patient is None:
            return True
        if rtype in DIRECTORY_TYPES:
            return directory_visible(resource)
        return in_patient_compartment(resource, patient)
    if not limits.confined or patient is None:
        return True
    return not patient_references(resource) - {f"Patient/{patient}"}
