"""A parsed search evaluated on one resource in memory: the same answer a query would give.

For what no query can see yet: the version being written inside a unit of
work (a Subscription's criteria, decided when the change is recorded). The
resource is indexed by the store's own indexer (`fhir.indexing`) and each
criterion compared with those index values as `store.search_query` compares
them in the database, so every search parameter of every type works the same
way here, with no parameter written out by hand. Chains and `_has` need
other resources, hence a query: they raise `Unmatchable`.

The meaning of a date or number prefix is shared with the query side
(`RANGE_TESTS`), so the two cannot drift apart.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from fhir_server.fhir.indexing import has_scalar
from fhir_server.fhir.search_params import SearchParam
from fhir_server.fhir.search_syntax import Criterion, Has, Range

Indexer = Callable[[dict[str, Any]], dict[str, Any]]
Predicate = Callable[[dict[str, Any]], bool]

# Prefix -> conditions on a target's [lo, hi] (R4 search, date and number): each is
# (target bound, comparison, bound of the searched value).
RANGE_TESTS: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "eq": (("lo", "$gte", "lo"), ("hi", "$lte", "hi")),
    "ne": (("lo", "$gte", "lo"), ("hi", "$lte", "hi")),  # negated by the caller
    "gt": (("hi", "$gt", "hi"),),
    "lt": (("lo", "$lt", "lo"),),
    "ge": (("hi", "$gte", "lo"),),
    "le": (("lo", "$lte", "hi"),),
    "sa": (("lo", "$gt", "hi"),),
    "eb": (("hi", "$lt", "lo"),),
    "ap": (("lo", "$lte", "hi"), ("hi", "$gte", "lo")),
}
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


class Unmatchable(ValueError):
    """A criterion that only a query can evaluate (a chain or `_has`)."""


def predicate(criteria: list[Criterion | Has], index: Indexer) -> Predicate:
    """Whether a resource meets every criterion; raises Unmatchable first if one cannot be
    evaluated on the resource alone."""
    for criterion in criteria:
        if isinstance(criterion, Has) or criterion.chain:
            name = criterion.resource_type if isinstance(criterion, Has) else criterion.param.code
            raise Unmatchable(f"Search parameter {name!r} needs a query (a chain or _has).")
    plain = [c for c in criteria if isinstance(c, Criterion)]

    def test(resource: dict[str, Any]) -> bool:
        idx = index(resource)
        return all(holds(c, resource, idx) for c in plain)

    return test


def holds(criterion: Criterion, resource: dict[str, Any], idx: dict[str, Any]) -> bool:
    """One non-chained criterion on a resource and its index (`fhir.indexing` layout)."""
    param, modifier = criterion.param, criterion.modifier
    values = _indexed(idx, param) if param.code != "_id" else [resource.get("id")]
    if modifier == "missing":
        return (not values) is criterion.values[0]
    if param.type in ("date", "number"):
        return any(_in_range(values, v) for v in criterion.values if isinstance(v, Range))
    wanted = [str(v) for v in criterion.values]
    if param.type == "reference":
        return any(_same_reference(w, str(r)) for w in wanted for r in values)
    if param.type == "token":
        if modifier == "text":
            texts = idx.get("t", {}).get(param.code, [])
            return any(t.startswith(w) for w in wanted for t in texts)
        found = any(w in values for w in wanted)
        return not found if modifier == "not" else found
    if param.type == "string":
        if modifier == "exact":
            return any(w in idx.get("x", {}).get(param.code, []) for w in wanted)
        near = str.__contains__ if modifier == "contains" else str.startswith
        return any(near(str(v), w) for w in wanted for v in values)
    return any(_uri_hit(modifier, w, str(v)) for w in wanted for v in values)


def _indexed(idx: dict[str, Any], param: SearchParam) -> list[Any]:
    """The parameter's index values: its scalar (`s`) or its list (`m`)."""
    if has_scalar(param):
        value = idx.get("s", {}).get(param.code)
        return [] if value is None else [value]
    return list(idx.get("m", {}).get(param.code, []))


def _in_range(targets: list[Any], value: Range) -> bool:
    def meets(target: dict[str, Any]) -> bool:
        tests = RANGE_TESTS[value.prefix]
        return all(_COMPARE[op](target[mine], getattr(value, its)) for mine, op, its in tests)

    if value.prefix == "ne":  # some value, none of them equal to this one
        return bool(targets) and not any(meets(t) for t in targets)
    return any(meets(t) for t in targets)


def _same_reference(wanted: str, stored: str) -> bool:
    """`*/id` (a bare id, any target type) or `Type/id` or an absolute URL as written."""
    if wanted.startswith("*/"):
        return "/" in stored and stored.split("/", 1)[1] == wanted[2:]
    return wanted == stored


def _uri_hit(modifier: str | None, wanted: str, stored: str) -> bool:
    if modifier == "below":
        return stored.startswith(wanted)
    if modifier == "above":
        prefixes = {wanted[: i + 1] for i, c in enumerate(wanted) if c == "/"} | {wanted}
        return stored in prefixes
    return stored == wanted
