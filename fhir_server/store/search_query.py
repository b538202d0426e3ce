"""A parsed search as MongoDB filters over the `idx` sub-document (see `fhir.indexing`).

Written to be correct on MongoDB and fast on the embedded server, whose
quirks decide the shapes used here:

- only scalar fields can be indexed there, and `$or`/`$in` turn into full
  scans, so a criterion may offer `branches`: disjoint filters, each a plain
  `$eq`/range on indexed scalars, whose union is the criterion. The engine
  runs each branch as its own query and merges the results;
- range operators do not match inside arrays, so multi-valued dates and
  numbers use `$elemMatch` on `{lo, hi}` documents, strings `$elemMatch` with
  `$regex`, tokens and references equality/`$in` (containment);
- `$not` is not implemented there, so negation is `$nor`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fhir_server.fhir.indexing import MANY, has_scalar
from fhir_server.fhir.resource_match import RANGE_TESTS
from fhir_server.fhir.search_params import SearchParam, search_params
from fhir_server.fhir.search_syntax import Criterion, Range, SortKey
from fhir_server.fhir.search_values import shift

LIVE: dict[str, Any] = {"deleted": {"$eq": False}}
_ONE_SECOND = timedelta(seconds=1)
# Largest number of values a criterion is split into indexable branches for.
_MAX_BRANCH_VALUES = 4

# Compound indexes on scalar `idx` fields for the booking searches (Slot by
# schedule+status+start, Appointment by actor/patient + date, ...). Only
# scalar fields: the embedded server cannot index arrays, and an index whose
# name ends with an array field's name breaks containment matching there.
INDEXES: dict[str, list[tuple[str, ...]]] = {
    "Slot": [("idx.s.schedule", "idx.s.status", "idx.s.start.lo")],
    "Appointment": [
        ("idx.u.actor.Practitioner", "idx.s.date.lo"),
        ("idx.u.actor.PractitionerRole", "idx.s.date.lo"),
        ("idx.u.actor.Location", "idx.s.date.lo"),
        ("idx.u.patient.Patient", "idx.s.date.lo"),
        ("idx.u.slot.Slot",),
        ("idx.s.status",),  # the hold-expiry job's pending Appointments
    ],
    "Schedule": [("idx.u.actor.Practitioner",), ("idx.u.actor.PractitionerRole",)],
    "AppointmentResponse": [("idx.s.appointment",)],
    "PractitionerRole": [("idx.s.practitioner",)],
    # `fhir-server audit who-accessed`: events naming one patient, by time.
    "AuditEvent": [("idx.u.entity.Patient", "idx.s.date.lo"), ("idx.s.date.lo",)],
}


@dataclass(frozen=True)
class Clause:
    """A criterion as one filter, and optionally as disjoint index-friendly branches."""

    plain: dict[str, Any]
    branches: tuple[dict[str, Any], ...] = ()


def conjoin(*filters: dict[str, Any]) -> dict[str, Any]:
    """AND of filters, merging operator documents on the same field ({$gte} + {$lt}).

    A condition the filter already holds is not added again: the embedded server
    cannot translate `$and` into SQL and filters every row of the collection in
    Python instead, so a search repeating its caller's limit (`status=free` on
    Slots for a patient) would cost a full scan.
    """
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for one in filters:
        for key, value in one.items():
            if key not in out:
                out[key] = value
            elif out[key] == value:
                continue
            elif _mergeable(out[key], value):
                out[key] = {**out[key], **value}
            else:
                extra.append({key: value})
    if extra:
        out["$and"] = [*out.get("$and", []), *extra]
    return out


def live(query: dict[str, Any]) -> dict[str, Any]:
    """`query` restricted to current (not deleted) rows.

    A deleted row keeps an empty `idx`, so a query that needs some `idx`
    field to be present already excludes it; only other queries get the
    `deleted` condition, which the embedded server would otherwise evaluate on
    every candidate row.
    """
    needs_index = any(
        key.startswith("idx.") and not (isinstance(value, dict) and value.get("$exists") is False)
        for key, value in query.items()
    )
    return query if needs_index else conjoin(LIVE, query)


def value_field(param: SearchParam) -> str:
    """Where the indexer put the parameter's value(s): `s` (scalar) or `m` (list)."""
    return f"idx.{'s' if has_scalar(param) else 'm'}.{param.code}"


def indexed_values(doc: dict[str, Any], param: SearchParam) -> list[Any]:
    found = field_value(doc, value_field(param))
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


def _mergeable(a: Any, b: Any) -> bool:
    return (
        isinstance(a, dict)
        and isinstance(b, dict)
        and all(k.startswith("$") for k in (*a, *b))
        and all(a[k] == b[k] for k in set(a) & set(b))
    )


def _any_of(field: str, values: list[Any]) -> dict[str, Any]:
    return {field: values[0]} if len(values) == 1 else {field: {"$in": values}}


def _scalar_any_of(field: str, values: list[Any]) -> dict[str, Any]:
    return {field: {"$eq": values[0]}} if len(values) == 1 else {field: {"$in": values}}


def _either(filters: list[dict[str, Any]]) -> dict[str, Any]:
    return filters[0] if len(filters) == 1 else {"$or": filters}


def _regex(values: Iterable[str], *, anchored: bool) -> dict[str, Any]:
    alternatives = "|".join(re.escape(v) for v in values)
    return {"$regex": f"^(?:{alternatives})" if anchored else f"(?:{alternatives})"}


# -- per type -------------------------------------------------------------------


def _range_conditions(value: Range, *, instant: bool) -> dict[str, dict[str, Any]]:
    """Conditions on a target's `lo`/`hi` for a prefixed value (R4 search, date and number)."""
    conditions: dict[str, dict[str, Any]] = {
        mine: {op: getattr(value, its)} for mine, op, its in RANGE_TESTS[value.prefix]
    }
    if instant:
        return _on_low_end(conditions)
    return conditions


def _on_low_end(conditions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Conditions on an instant's `hi` restated on `lo`, which the indexes hold.

    A stored instant's range [lo, hi] never crosses a whole second (it covers
    one second, or a decimal fraction of one, aligned). So against a bound on
    a second boundary (`...000000` from below, `...999999` from above)
    `hi OP bound` is exactly `lo OP bound`; against other bounds the `hi`
    condition stays and `lo` gets the implied one-second window.
    """
    if "hi" not in conditions:
        return conditions
    ((operator, bound),) = conditions["hi"].items()
    bound = str(bound)
    aligned = bound.endswith("000000") if operator in ("$gte", "$lt") else bound.endswith("999999")
    out = {k: v for k, v in conditions.items() if k != "hi" or not aligned}
    low = {operator: bound}
    if not aligned and operator in ("$gt", "$gte"):
        low = {"$gte": shift(bound, -_ONE_SECOND)}
    elif not aligned:
        low = {"$lte": bound}
    out["lo"] = {**out.get("lo", {}), **low} if not set(low) & set(out.get("lo", {})) else out["lo"]
    return out


def _range_clause(param: SearchParam, values: tuple[Any, ...]) -> dict[str, Any]:
    scalar = has_scalar(param)
    instant = scalar and param.element_type == "instant"
    filters = []
    for value in values:
        conditions = _range_conditions(value, instant=instant)
        one: dict[str, Any]
        if scalar:
            one = {f"idx.s.{param.code}.{k}": v for k, v in conditions.items()}
        else:
            one = {f"idx.m.{param.code}": {"$elemMatch": conditions}}
        if value.prefix == "ne":  # a value other than this one: resources without one do not match
            one = {"$nor": [one], value_field(param): {"$exists": True}}
        filters.append(one)
    return _either(filters)


def _token_clause(criterion: Criterion) -> dict[str, Any]:
    param, modifier = criterion.param, criterion.modifier
    values = [str(v) for v in criterion.values]
    if modifier == "text":
        return {f"idx.t.{param.code}": {"$elemMatch": _regex(values, anchored=True)}}
    if param.code == "_id":
        found = _scalar_any_of("_id", values)
        return {"$nor": [found]} if modifier == "not" else found
    if has_scalar(param):
        found = _scalar_any_of(value_field(param), values)
    else:
        found = _any_of(value_field(param), values)
    return {"$nor": [found]} if modifier == "not" else found


def _string_clause(criterion: Criterion) -> dict[str, Any]:
    code, values = criterion.param.code, [str(v) for v in criterion.values]
    if criterion.modifier == "exact":
        return _any_of(f"idx.x.{code}", values)
    anchored = criterion.modifier != "contains"
    return {f"idx.m.{code}": {"$elemMatch": _regex(values, anchored=anchored)}}


def _uri_clause(criterion: Criterion) -> dict[str, Any]:
    field, values = f"idx.m.{criterion.param.code}", [str(v) for v in criterion.values]
    if criterion.modifier == "below":
        return {field: {"$elemMatch": _regex(values, anchored=True)}}
    if criterion.modifier == "above":
        prefixes = {v[: i + 1] for v in values for i, c in enumerate(v) if c == "/"} | set(values)
        return _any_of(field, sorted(prefixes))
    return _any_of(field, values)


def expand_references(param: SearchParam, values: Iterable[str]) -> list[str]:
    """`*/id` (a bare id) becomes `Type/id` for every target type."""
    out: list[str] = []
    for value in values:
        if value.startswith("*/"):
            out += [f"{t}/{value[2:]}" for t in param.targets]
        else:
            out.append(value)
    return out


def reference_clause(param: SearchParam, references: list[str]) -> Clause:
    """Resources whose `param` holds any of `references` (already `Type/id` or URLs)."""
    code = param.code
    if not references:
        return Clause({"_id": {"$in": []}})
    if has_scalar(param):
        return Clause(_scalar_any_of(f"idx.s.{code}", references))
    plain = _any_of(f"idx.m.{code}", references)
    kinds = {r.split("/", 1)[0] for r in references if "/" in r and ":" not in r}
    if len(kinds) != 1 or len(references) > _MAX_BRANCH_VALUES:
        return Clause(plain)
    (kind,) = kinds
    sole = f"idx.u.{code}.{kind}"
    typed = [r for r in references if r.startswith(f"{kind}/")]
    branches: list[dict[str, Any]] = [{sole: {"$eq": r}} for r in typed]
    branches.append({sole: {"$eq": MANY}, **_any_of(f"idx.m.{code}", typed)})
    branches += [{f"idx.m.{code}": r} for r in references if r not in typed]
    return Clause(plain, tuple(branches))


def criterion_clause(criterion: Criterion) -> Clause:
    """A non-chained criterion as a clause (chains and `_has` are resolved by the engine)."""
    param, modifier = criterion.param, criterion.modifier
    if modifier == "missing":
        missing = criterion.values[0] is True
        if param.code == "_id":
            return Clause({"_id": {"$in": []}} if missing else {})
        return Clause({value_field(param): {"$exists": not missing}})
    if param.type == "reference":
        return reference_clause(param, expand_references(param, map(str, criterion.values)))
    if param.type in ("date", "number"):
        return Clause(_range_clause(param, criterion.values))
    if param.type == "token":
        return Clause(_token_clause(criterion))
    if param.type == "string":
        return Clause(_string_clause(criterion))
    return Clause(_uri_clause(criterion))


# -- order and keyset paging ------------------------------------------------------


def _sort_field(resource_type: str, code: str) -> str:
    """A scalar parameter sorts on its own (indexed) value, a list-valued one on `o`."""
    if code == "_id":
        return "_id"
    param = search_params(resource_type)[code]
    if has_scalar(param):
        return f"idx.s.{code}.lo" if param.type == "date" else f"idx.s.{code}"
    return f"idx.o.{code}"


def sort_fields(resource_type: str, keys: list[SortKey]) -> list[tuple[str, int]]:
    """MongoDB sort for `_sort`, always ending with `_id` so the order is total.

    A resource without a value sorts first (ascending), as MongoDB and the
    embedded server both order a missing field.
    """
    fields = [(_sort_field(resource_type, k.code), -1 if k.descending else 1) for k in keys]
    if not any(f == "_id" for f, _ in fields):
        fields.append(("_id", 1))
    return fields


def field_value(doc: dict[str, Any], path: str, default: Any = None) -> Any:
    """A dotted field of a fetched row, nested (MongoDB) or flattened (embedded projection)."""
    if path in doc:
        return doc[path]
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def sort_values(doc: dict[str, Any], fields: list[tuple[str, int]]) -> list[Any]:
    """The row's sort keys; None where it has no value."""
    return [field_value(doc, f) for f, _ in fields]


def _equal(value: Any) -> dict[str, Any]:
    return {"$exists": False} if value is None else {"$eq": value}


def _beyond(value: Any, *, greater: bool) -> list[dict[str, Any]]:
    """Conditions (disjoint, in sort order) for values above/below `value`; missing is lowest."""
    if greater:
        return [{"$exists": True}] if value is None else [{"$gt": value}]
    return [] if value is None else [{"$lt": value}, {"$exists": False}]


def after(
    fields: list[tuple[str, int]], values: list[Any], *, forward: bool
) -> list[dict[str, Any]]:
    """Disjoint filters for the rows strictly after (or before) `values` in `fields` order.

    Listed most specific first, so their results, each in sort order, are
    already in order when concatenated; each is a plain `$eq`/range filter
    (no `$or`, which the embedded server cannot run on an index).
    """
    out = []
    for i in range(len(fields) - 1, -1, -1):
        field, direction = fields[i]
        ascending = (direction == 1) == forward
        equal = {fields[j][0]: _equal(values[j]) for j in range(i)}
        out += [{**equal, field: c} for c in _beyond(values[i], greater=ascending)]
    return out
