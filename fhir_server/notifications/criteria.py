"""Matching an R4 Subscription's `criteria` against one resource.

The criteria is a search URL (`Appointment?actor=Practitioner/123`). Events
concern one resource that was just written, so the match is evaluated on the
resource itself rather than by running a search: same answer, no query, and
it also holds for the version being written inside a unit of work that the
search index cannot see yet. Unsupported parameters make the criteria
invalid (the Subscription then goes to `error` instead of silently matching
everything).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

_PARTICIPANT_TYPES = {
    "actor": None,
    "patient": "Patient",
    "practitioner": "Practitioner",
    "location": "Location",
}


class CriteriaError(ValueError):
    """The criteria names a type or parameter the matcher does not support."""


def _references(resource: dict[str, Any], wanted_type: str | None) -> set[str]:
    refs = {p.get("actor", {}).get("reference", "") for p in resource.get("participant", [])}
    if wanted_type:
        refs = {r for r in refs if r.startswith(f"{wanted_type}/")}
    return refs | {r.split("/", 1)[1] for r in refs if wanted_type and "/" in r}


def param_test(name: str, values: list[str]) -> Callable[[dict[str, Any]], bool]:
    if name in _PARTICIPANT_TYPES:
        wanted_type = _PARTICIPANT_TYPES[name]
        return lambda r: bool(_references(r, wanted_type) & set(values))
    if name == "status":
        return lambda r: r.get("status") in values
    if name == "_id":
        return lambda r: r.get("id") in values
    raise CriteriaError(f"Search parameter {name!r} is not supported in Subscription criteria.")


@lru_cache(maxsize=1024)
def compile_criteria(criteria: str) -> tuple[str, Callable[[dict[str, Any]], bool]]:
    """(resource type, predicate) for a criteria string; raises CriteriaError.

    Kept per criteria string: every event is matched against every live
    Subscription, and their criteria change far less often than bookings come.
    """
    resource_type, _, query = criteria.partition("?")
    if resource_type != "Appointment":
        raise CriteriaError("Only Appointment criteria are supported.")
    tests = [param_test(name, value.split(",")) for name, value in parse_qsl(query)]
    return resource_type, lambda resource: all(test(resource) for test in tests)


def matches(criteria: str, resource: dict[str, Any]) -> bool:
    """False for criteria that cannot be compiled (activation reports those)."""
    try:
        resource_type, predicate = compile_criteria(criteria)
    except CriteriaError:
        return False
    return resource.get("resourceType") == resource_type and predicate(resource)
