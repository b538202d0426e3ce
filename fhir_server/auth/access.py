"""The access gate at the FHIR edge: one check on the way in, one on the way out.

`rest.dispatch` hands every request (plain or Bundle entry) to `Access.guard`
with a callable that runs the interaction. On the way in the gate asks
`policy.decide` and checks the resources an instance-level request or an
operation's inputs name; criteria are limited by the token's `ReadLimits`
wherever they are evaluated (the searcher applies them). On the way out,
`release` walks whatever the interaction answers, whatever it is (a resource,
a Bundle of any type, a Parameters, headers that name a resource), and lets
through only what `policy.visible` allows: a search or history drops the rest
(and stops counting a `total`), a direct answer becomes 404. Being structural,
a new operation passes through it without a check of its own.

The decisions live in `auth.policy`; this module only gathers the facts the
policy needs from the store and applies its answers. A refusal of a request
that names a stored resource carries it (`audit.trail.Withholding`): the row
the gate already read, or, where it read none (a refusal up front, a check
that was a query), the row read once on the refusal path; so the audit trail
names the patients of an attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_server.audit.recorder import AuditRecorder
from fhir_server.audit.trail import Withheld, WithheldForbidden
from fhir_server.auth.compartment import compartment_params, operation_mentions, reference_key
from fhir_server.auth.policy import Decision, TokenContext, decide, may_change, visible
from fhir_server.auth.role_checks import with_actors
from fhir_server.auth.tokens import Tokens, unauthorized
from fhir_server.fhir.errors import FhirError, NotFound
from fhir_server.fhir.messages import FhirRequest, FhirResponse
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.fhir.routing import Interaction

Run = Callable[[FhirRequest], Awaitable[FhirResponse]]
_NAMING_HEADERS = ("Location", "Content-Location")
_UNKNOWN = "The resource is not known."
log = logging.getLogger("fhir_server.auth")


class _Services(Protocol):
    @property
    def store(self) -> Any: ...

    @property
    def searcher(self) -> Any: ...


@dataclass(frozen=True)
class Passage:
    """One interaction through the gate: what was asked, by which token, what left.

    `returned` holds the `Type/id` of every stored resource the answer carries
    (after filtering): what an audit trail records as "accessed".
    """

    interaction: Interaction
    token: TokenContext
    response: FhirResponse
    returned: tuple[str, ...]


class Access:
    def __init__(self, tokens: Tokens, audit: AuditRecorder) -> None:
        self.tokens = tokens
        self.audit = audit

    async def authenticate(self, authorization: str | None) -> TokenContext:
        return await self.tokens.authenticate(authorization)

    async def guard(self, services: _Services, req: FhirRequest, run: Run) -> FhirResponse:
        return (await self.audit.watch(req, self._guard(services, req, run))).response

    async def _guard(self, services: _Services, req: FhirRequest, run: Run) -> Passage:
        ctx = req.auth
        if not isinstance(ctx, TokenContext):
            raise unauthorized("This server needs a SMART access token (Bearer).", error="")
        req.auth = ctx = await with_actors(services.searcher, ctx)  # a practitioner's roles
        decision = decide(ctx, req)
        if not decision.allowed:
            await self._denied(ctx, decision.reason)
            named = await _named_instance(services, req.interaction)
            raise _withheld(decision.reason, named, forbidden=decision.status != 404)
        await self._check_named(services, ctx, decision, req)
        return await release(services, ctx, req.interaction, await run(req))

    async def _denied(self, ctx: TokenContext, reason: str) -> None:
        await self.audit.record(
            "access-denied", success=False, who=ctx.sub, client_id=ctx.client_id, detail=reason
        )

    async def _check_named(
        self, services: _Services, ctx: TokenContext, decision: Decision, req: FhirRequest
    ) -> None:
        """The resource an instance-level request names, and those an operation's inputs
        name, must be readable by the token before anything runs."""
        interaction = req.interaction
        rtype, rid = interaction.resource_type, interaction.rid
        read, current = False, None
        if rid and rtype and decision.patient:
            read, current = True, await self._check_current(services, ctx, rtype, rid)
        if rid and rtype and decision.scope_params:
            params = [("_id", rid), *decision.scope_params]
            if not await services.searcher.matching_ids(rtype, params):
                if not read:  # the one read of this refusal, for the audit trail
                    current = await _stored(services, rtype, rid)
                raise _withheld(f"{rtype}/{rid} is not known.", current)
        if decision.patient and interaction.kind.startswith("operation"):
            # A state-changing (POSTed) operation reads inputs from its query string too.
            query = req.params if req.method == "POST" else ()
            for mentioned, mid in operation_mentions(req.body, query):
                types = [mentioned] if mentioned else sorted(compartment_params())
                for candidate in types:
                    if candidate in compartment_params():
                        await self._check_current(services, ctx, candidate, mid)

    async def _check_current(
        self, services: _Services, ctx: TokenContext, rtype: str, rid: str
    ) -> dict[str, Any] | None:
        """The stored resource, when there is one the token may act on."""
        current = await services.store.current(rtype, rid)
        if current is None or current.resource is None:
            return None  # the interaction itself answers 404/410 (or creates, checked by policy)
        if not may_change(ctx.limits, current.resource):
            await self._denied(ctx, f"{rtype} outside the token's patient compartment")
            raise _withheld(f"{rtype}/{rid} is not known.", current.resource)
        resource: dict[str, Any] = current.resource
        return resource


async def _stored(services: _Services, rtype: str, rid: str) -> dict[str, Any] | None:
    """The current version of a resource, for a refusal's audit event only: a failure to
    read it leaves the event without its patients rather than failing the refusal."""
    try:
        current = await services.store.current(rtype, rid)
    except Exception:  # the refusal is answered whatever the store says
        log.warning("could not read a refused resource for the audit trail")
        return None
    return None if current is None else current.resource


async def _named_instance(services: _Services, interaction: Interaction) -> dict[str, Any] | None:
    """The stored resource an instance-level request refused up front names (one read, on
    the refusal path only): an attempt on a patient's record is named as such."""
    rtype, rid = interaction.resource_type, interaction.rid
    if rtype not in SERVED_TYPES or not rid:
        return None
    return await _stored(services, rtype, rid)


def _withheld(
    diagnostics: str, resource: dict[str, Any] | None, *, forbidden: bool = False
) -> FhirError:
    """The 404 (or 403) of a refusal, carrying the stored resource refused, if any, for the
    audit trail."""
    stored = (
        resource is not None
        and resource.get("resourceType") in SERVED_TYPES
        and isinstance(resource.get("id"), str)
    )
    withheld = (resource,) if stored and resource is not None else ()
    if forbidden:
        return WithheldForbidden(diagnostics, withheld=withheld)
    return Withheld(diagnostics, withheld=withheld)


async def release(
    services: _Services, ctx: TokenContext, interaction: Interaction, response: FhirResponse
) -> Passage:
    """The way out: what of `response` the token may see, or NotFound when nothing of it."""
    limits = ctx.limits
    resource = response.resource
    returned: list[tuple[str, str]] = []
    if resource is not None and not _let_through(limits, interaction, resource, returned):
        raise _withheld(_UNKNOWN, resource)
    judge = may_change if interaction.changes else visible
    # A search's criteria already carried the scope's; a fresh create echoes what it sent.
    fresh = interaction.kind == "create" and response.status == 201
    if interaction.kind != "search" and not fresh:
        unmatched = await _scope_misses(services, limits, returned)
        if unmatched and resource is not None:
            returned = [key for key in returned if key not in unmatched]
            if not _drop_keys(resource, unmatched):
                raise _withheld(_UNKNOWN, resource)
    named = _named_by_headers(response)
    if named and named not in returned:
        current = await services.store.current(*named)
        if current is None or current.resource is None:
            raise NotFound(_UNKNOWN)
        if not judge(limits, current.resource) or (
            not fresh and await _scope_misses(services, limits, [named])
        ):
            raise _withheld(_UNKNOWN, current.resource)
        returned.append(named)
    keys = tuple(f"{rtype}/{rid}" for rtype, rid in returned)
    return Passage(interaction, ctx, response, keys)


def _let_through(
    limits: ReadLimits,
    interaction: Interaction,
    resource: dict[str, Any],
    returned: list[tuple[str, str]],
) -> bool:
    """Filter a resource in place (Bundle entries, Parameters parts); False when it may
    not leave at all. Appends the stored resources that stay to `returned`."""
    kind = resource.get("resourceType")
    if kind == "OperationOutcome":
        return True
    if kind == "Bundle":
        _filter_bundle(limits, interaction, resource, returned)
        return True
    if kind == "Parameters":
        kept = _kept_parameters(limits, interaction, resource.get("parameter") or [], returned)
        _put(resource, "parameter", kept)  # R4 JSON has no empty arrays
        return True
    written = interaction.changes and kind == interaction.resource_type
    if not (may_change if written else visible)(limits, resource):
        return False
    if kind in SERVED_TYPES and isinstance(resource.get("id"), str):
        returned.append((str(kind), resource["id"]))
    return True


def _filter_bundle(
    limits: ReadLimits,
    interaction: Interaction,
    bundle: dict[str, Any],
    returned: list[tuple[str, str]],
) -> None:
    if interaction.kind == "batch":
        return  # each entry of a batch or transaction went through the gate on its own
    kept: list[Any] = []
    dropped_match = False
    for entry in bundle.get("entry") or []:
        if _entry_through(limits, interaction, entry, returned):
            kept.append(entry)
        elif isinstance(entry, dict):
            dropped_match |= (entry.get("search") or {}).get("mode", "match") == "match"
    if len(kept) == len(bundle.get("entry") or []):
        return
    _put(bundle, "entry", kept)
    if dropped_match:
        bundle.pop("total", None)  # a hidden resource is never counted


def _entry_through(
    limits: ReadLimits,
    interaction: Interaction,
    entry: Any,
    returned: list[tuple[str, str]],
) -> bool:
    if not isinstance(entry, dict):
        return False
    resource = entry.get("resource")
    if isinstance(resource, dict):
        return _let_through(limits, interaction, resource, returned)
    named = _entry_name(entry)
    if named is None:
        return True  # an outcome-only batch/transaction answer
    rtype = named[0]
    if limits.of(rtype) is None:
        return False
    # A deleted version names a resource without showing it: confined types are only
    # named where the instance itself was checked on the way in.
    return rtype not in limits.confined or interaction.level == "instance"


def _entry_name(entry: dict[str, Any]) -> tuple[str, str] | None:
    response = entry.get("response") or {}
    for value in (entry.get("fullUrl"), response.get("location")):
        if isinstance(value, str):
            key = reference_key(value)
            if key and key.split("/")[0] in SERVED_TYPES:
                rtype, rid = key.split("/")
                return rtype, rid
    return None


def _kept_parameters(
    limits: ReadLimits,
    interaction: Interaction,
    parameters: list[Any],
    returned: list[tuple[str, str]],
) -> list[Any]:
    kept = []
    for parameter in parameters:
        if not isinstance(parameter, dict):
            continue
        inner = parameter.get("resource")
        if isinstance(inner, dict) and not _let_through(limits, interaction, inner, returned):
            continue
        if parameter.get("part"):
            parameter["part"] = _kept_parameters(limits, interaction, parameter["part"], returned)
        kept.append(parameter)
    return kept


async def _scope_misses(
    services: _Services, limits: ReadLimits, keys: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The resources of types under a scope's `?param=` restriction that do not match it
    (asked of the store: the restriction is search criteria, not a look at the body)."""
    wanted: dict[str, set[str]] = {}
    for rtype, rid in keys:
        if rtype in limits.scoped:
            wanted.setdefault(rtype, set()).add(rid)
    misses: set[tuple[str, str]] = set()
    for rtype, ids in wanted.items():
        matching = await services.searcher.readable_ids(rtype, sorted(ids), limits)
        misses |= {(rtype, rid) for rid in ids - set(matching)}
    return misses


def _drop_keys(resource: dict[str, Any], keys: set[tuple[str, str]]) -> bool:
    """Remove the resources named by `keys` from a Bundle or Parameters; False when the
    answer is itself one of them."""
    kind = resource.get("resourceType")
    if (kind, resource.get("id")) in keys:
        return False
    if kind == "Bundle":
        entries = resource.get("entry") or []
        kept = [e for e in entries if _drop_keys(e.get("resource") or {}, keys)]
        if len(kept) != len(entries):
            _put(resource, "entry", kept)
            resource.pop("total", None)
    elif kind == "Parameters":
        params = resource.get("parameter") or []
        _put(
            resource, "parameter", [p for p in params if _drop_keys(p.get("resource") or {}, keys)]
        )
    return True


def _put(resource: dict[str, Any], key: str, items: list[Any]) -> None:
    """Set a list element, or remove it when nothing is left (R4 JSON has no empty arrays)."""
    if items:
        resource[key] = items
    else:
        resource.pop(key, None)


def _named_by_headers(response: FhirResponse) -> tuple[str, str] | None:
    """The resource a Location or Content-Location header names (a write's answer)."""
    for header in _NAMING_HEADERS:
        value = response.headers.get(header)
        if value:
            key = reference_key(value)
            if key and key.split("/")[0] in SERVED_TYPES:
                rtype, rid = key.split("/")
                return rtype, rid
    return None
