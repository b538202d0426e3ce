"""SMART App Launch scopes, v1 and v2, parsed into values the policy can reason about.

Grammar (SMART App Launch 2.2, "Scopes for requesting clinical data"):
``(patient|user|system)/(Type|*).(permissions)[?param=value&...]`` where the
permissions are v1 ``read`` / ``write`` / ``*`` or v2 letters from ``cruds`` in
that order. v1 ``read`` means v2 ``rs`` and ``write`` means ``cud`` (the IG's
own v1-to-v2 table).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

CONTEXTS = ("patient", "user", "system")
LETTERS = "cruds"
# The letter each interaction needs (operations are decided by whoever asks).
INTERACTION_LETTER = {
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
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE = re.compile(
    r"^(patient|user|system)/([A-Z][A-Za-z]+|\*)\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$"
)
# Scopes that are not about clinical data: identity, launch context and refresh.
NON_RESOURCE = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    }
)


@dataclass(frozen=True)
class ResourceScope:
    """One clinical-data scope: who it is for, which type, what may be done, and filters."""

    context: str
    resource_type: str  # a type name or "*"
    permissions: frozenset[str]
    params: tuple[tuple[str, str], ...] = ()
    v1: bool = False

    def covers_type(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)

    def allows(self, resource_type: str, permission: str) -> bool:
        return self.covers_type(resource_type) and permission in self.permissions

    def text(self) -> str:
        """The scope string, v1 spelling kept when it was asked for that way."""
        letters = "".join(c for c in LETTERS if c in self.permissions)
        if self.v1:
            letters = next((k for k, v in _V1.items() if v == letters), letters)
        query = "&".join(f"{k}={v}" for k, v in self.params)
        base = f"{self.context}/{self.resource_type}.{letters}"
        return f"{base}?{query}" if query else base


def parse_resource_scope(scope: str) -> ResourceScope | None:
    """The parsed scope, or None when the string is not a clinical-data scope."""
    match = _RESOURCE.match(scope)
    if match is None:
        return None
    context, rtype, perms, query = match.groups()
    if not perms:
        return None
    v1 = perms in _V1
    letters = _V1.get(perms, perms)
    params = tuple(parse_qsl(query, keep_blank_values=False)) if query else ()
    if query and not params:
        return None
    return ResourceScope(context, rtype, frozenset(letters), params, v1)


def is_known_scope(scope: str) -> bool:
    return scope in NON_RESOURCE or parse_resource_scope(scope) is not None


def split_scope(scope: str | None) -> list[str]:
    """Scope strings of a space-separated `scope` value, in order, without repeats."""
    seen: dict[str, None] = {}
    for item in (scope or "").split():
        seen.setdefault(item, None)
    return list(seen)


@dataclass(frozen=True)
class ScopeSet:
    """A granted scope value: its clinical-data scopes and its other scopes."""

    resources: tuple[ResourceScope, ...] = ()
    others: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, scope: str | None) -> ScopeSet:
        resources: list[ResourceScope] = []
        others: set[str] = set()
        for item in split_scope(scope):
            parsed = parse_resource_scope(item)
            if parsed is not None:
                resources.append(parsed)
            elif item in NON_RESOURCE:
                others.add(item)
        return cls(tuple(resources), frozenset(others))

    def matching(
        self, resource_type: str, permission: str, contexts: Iterable[str] = CONTEXTS
    ) -> list[ResourceScope]:
        wanted = set(contexts)
        return [
            s for s in self.resources if s.context in wanted and s.allows(resource_type, permission)
        ]


def _grant_one(requested: ResourceScope, allowed: ResourceScope) -> ResourceScope | None:
    """The part of `requested` that `allowed` permits, or None when nothing is left
    (`patient/*.cruds` asked and `patient/Appointment.cruds` allowed: the Appointment part)."""
    if requested.context != allowed.context:
        return None
    overlap = requested.covers_type(allowed.resource_type) or allowed.covers_type(
        requested.resource_type
    )
    if not overlap:
        return None
    rtype = allowed.resource_type if allowed.resource_type != "*" else requested.resource_type
    permissions = requested.permissions & allowed.permissions
    if not permissions:
        return None
    params = requested.params + tuple(p for p in allowed.params if p not in requested.params)
    v1 = (
        requested.v1
        and rtype == requested.resource_type
        and permissions == requested.permissions
        and not allowed.params
    )
    return ResourceScope(requested.context, rtype, permissions, params, v1)


def narrow(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """Requested scopes cut down to what `allowed` permits (never wider than either).

    A requested clinical-data scope is granted with what all the allowed scopes
    together permit: the permissions it shares with each allowed scope, with
    every `?param=` restriction of either side, the pieces of equal restriction
    merged (`patient/*.rs` and `patient/Appointment.cruds` both allowed grant
    `patient/Appointment.cruds`, in whichever order they were registered). A
    scope that nothing allows is dropped, as the IG lets a server grant less.
    """
    allowed_list = list(allowed)
    allowed_resources = [p for p in map(parse_resource_scope, allowed_list) if p is not None]
    granted: dict[str, None] = {}
    for item in requested:
        parsed = parse_resource_scope(item)
        if parsed is None:
            if item in NON_RESOURCE and item in allowed_list:
                granted.setdefault(item, None)
            continue
        pieces = [p for c in allowed_resources if (p := _grant_one(parsed, c)) is not None]
        for piece in _merged(parsed, pieces):
            granted.setdefault(piece.text(), None)
    return list(granted)


def _merged(requested: ResourceScope, pieces: list[ResourceScope]) -> list[ResourceScope]:
    """Pieces of one requested scope: permissions united per type and restriction, and
    none kept that another piece already covers (its type or `*`, as wide or wider
    permissions, fewer restrictions)."""
    by_key: dict[tuple[str, frozenset[tuple[str, str]]], ResourceScope] = {}
    for piece in pieces:
        key = (piece.resource_type, frozenset(piece.params))
        known = by_key.get(key)
        permissions = piece.permissions | (known.permissions if known else frozenset())
        v1 = (
            requested.v1
            and piece.resource_type == requested.resource_type
            and permissions == requested.permissions
            and key[1] == set(requested.params)
        )
        base = known or piece
        by_key[key] = ResourceScope(base.context, base.resource_type, permissions, base.params, v1)
    kept = list(by_key.values())
    return [p for p in kept if not any(q is not p and _covers(q, p) for q in kept)]


def _covers(wide: ResourceScope, narrow_one: ResourceScope) -> bool:
    """Everything `narrow_one` grants, `wide` grants too (and they are not the same)."""
    same = (wide.resource_type, wide.permissions, set(wide.params)) == (
        narrow_one.resource_type,
        narrow_one.permissions,
        set(narrow_one.params),
    )
    return (
        not same
        and wide.covers_type(narrow_one.resource_type)
        and wide.permissions >= narrow_one.permissions
        and set(wide.params) <= set(narrow_one.params)
    )


def only_contexts(scopes: Iterable[str], contexts: Iterable[str]) -> list[str]:
    """Keep non-resource scopes and the clinical-data scopes of the given contexts."""
    wanted = set(contexts)
    out = []
    for item in scopes:
        parsed = parse_resource_scope(item)
        if parsed is None or parsed.context in wanted:
            out.append(item)
    return out


_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_WHOSE = {
    "patient": "the patient's",
    "user": "all the",
    "system": "all the",
}
_OTHER_WORDS = {
    "openid": "Confirm who you are",
    "fhirUser": "Know which patient or practitioner record is yours",
    "profile": "Know which patient or practitioner record is yours",
    "launch": "Open with the patient chosen in the clinic system",
    "launch/patient": "Know which patient you are using it for",
    "launch/encounter": "Know which visit you are using it for",
    "offline_access": "Keep access after you close it, until you revoke it",
    "online_access": "Keep access while you are using it",
}


def plain_words(scope: str) -> str:
    """A scope explained to a person on the consent page."""
    parsed = parse_resource_scope(scope)
    if parsed is None:
        return _OTHER_WORDS.get(scope, scope)
    verbs = [_VERBS[c] for c in LETTERS if c in parsed.permissions]
    what = (
        "records of every kind"
        if parsed.resource_type == "*"
        else f"{parsed.resource_type} records"
    )
    text = f"{', '.join(verbs).capitalize()} {_WHOSE[parsed.context]} {what}"
    if parsed.params:
        text += " where " + " and ".join(f"{k} is {v}" for k, v in parsed.params)
    return text
