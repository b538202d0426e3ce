"""Who a Subscription answers to: its owner, and what the owner's token may read.

A notification leaves the server like a search result, so it passes the same
gate (ARCHITECTURE.md, "one authorisation gate"): the write hook stamps the
Subscription with its owner's token claims (client, user, scopes, patient,
role: the `subscription-owner` extension, replaced on every write, so a
client cannot set it), and an event is recorded for the Subscription only
when that token could read the resource: its type among the owner's read
limits (`auth.policy`), the resource `visible` to them, and the limits'
criteria for the type (scope `?param=` restrictions, a role's own-records
narrowing, a patient's compartment) met by the resource, evaluated on it
like the criteria. A limit the resource alone cannot decide (a `_has`) lets
nothing through. A Subscription written with auth off (or by the operator's
CLI) has no owner and is not narrowed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlencode

from fhir_server.auth.policy import TokenContext, visible
from fhir_server.auth.tokens import context_of
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.resource import Resource
from fhir_server.notifications.codes import BASE
from fhir_server.notifications.criteria import CriteriaError, compile_query

OWNER_EXT: Final = f"{BASE}/StructureDefinition/subscription-owner"
# Token claim -> sub-extension name, for the claims that decide what a token reads.
_CLAIMS: Final = {
    "client_id": "client",
    "sub": "user",
    "scope": "scope",
    "patient": "patient",
    "fhirUser": "fhirUser",
    "role": "role",
}


def stamped(subscription: Resource, token: Any) -> Resource:
    """The Subscription as it is stored: owned by `token` (a TokenContext), or by nobody."""
    kept = [e for e in subscription.get("extension", []) if e.get("url") != OWNER_EXT]
    if isinstance(token, TokenContext):
        claims = {
            "client_id": token.client_id,
            "sub": token.sub,
            "scope": " ".join(s.text() for s in token.scopes.resources),
            "patient": token.patient,
            "fhirUser": token.fhir_user,
            "role": token.role,
        }
        parts = [{"url": _CLAIMS[k], "valueString": v} for k, v in claims.items() if v]
        kept.append({"url": OWNER_EXT, "extension": parts})
    out = {k: v for k, v in subscription.items() if k != "extension"}
    return {**out, "extension": kept} if kept else out


def owner_limits(subscription: Resource) -> ReadLimits | None:
    """What the owner's token may read; None when the Subscription has no owner."""
    for extension in subscription.get("extension", []):
        if extension.get("url") == OWNER_EXT:
            names = {name: claim for claim, name in _CLAIMS.items()}
            claims = tuple(
                (names[part["url"]], str(part.get("valueString", "")))
                for part in extension.get("extension", [])
                if part.get("url") in names
            )
            return _limits(claims)
    return None


@lru_cache(maxsize=256)
def _limits(claims: tuple[tuple[str, str], ...]) -> ReadLimits:
    """Worked out once per owner: every event asks for every live Subscription."""
    return context_of(dict(claims)).limits


def may_read_type(limits: ReadLimits | None, resource_type: str) -> bool:
    return limits is None or limits.of(resource_type) is not None


def may_see(subscription: Resource, resource: Resource, base_url: str) -> bool:
    """Whether the Subscription's owner could read this resource (see the module doc)."""
    limits = owner_limits(subscription)
    if limits is None:
        return True
    rtype = str(resource.get("resourceType"))
    criteria = limits.of(rtype)
    if criteria is None or not visible(limits, resource):
        return False
    try:
        return compile_query(rtype, urlencode(criteria), base_url)(resource)
    except CriteriaError:
        return False
