"""Search parameters from a URL or form, checked and parsed (R4 search page, 3.1.1).

The result is a `ParsedSearch` made of values in the same normal forms the
indexer writes (`fhir.search_values`), so the store only has to compare.
Every malformed value (bad date, unknown prefix or modifier, bad chain, bad
`_sort`/`_include`) is a `BadRequest` naming the parameter; unknown
parameters are listed in `unknown` (and refused only when the client asks
for strict handling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.indexing import reference_pattern
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.fhir.search_params import SearchParam, search_params
from fhir_server.fhir.search_values import (
    date_range,
    fold,
    number_range,
    shift,
    split_escaped,
    unescape,
)

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude"}
)
# Never searched on and never echoed in links (formatting, our paging cursor).
IGNORED_PARAMS = frozenset({"_format", "_pretty", "_cursor", "_type"})
_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "uri": {"below", "above", "missing"},
    "reference": {"missing"},
}
_MAX_CHAIN_DEPTH = 3


@dataclass(frozen=True)
class Range:
    """A prefixed date or number value: compare the target [lo, hi] to [lo, hi] here."""

    prefix: str
    lo: str | float
    hi: str | float


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are ORed; criteria are ANDed."""

    param: SearchParam
    modifier: str | None
    # strings (folded or exact), tokens, references, uris as text; dates/numbers as Range;
    # for :missing a single bool.
    values: tuple[str | Range | bool, ...]
    chain: tuple[tuple[str, Criterion], ...] = ()


@dataclass(frozen=True)
class Has:
    """Reverse chain `_has:Type:ref:criterion`: resources referenced by matching Types."""

    resource_type: str
    reference: SearchParam
    criterion: Criterion | Has


@dataclass(frozen=True)
class SortKey:
    code: str
    descending: bool


@dataclass(frozen=True)
class Include:
    source_type: str
    param: SearchParam | None  # None is `*`
    target_type: str | None
    iterate: bool


@dataclass
class ParsedSearch:
    resource_type: str
    criteria: list[Criterion | Has] = field(default_factory=list)
    count: int = 20
    sort: list[SortKey] = field(default_factory=list)
    total: str = "none"
    summary: str | None = None
    include: list[Include] = field(default_factory=list)
    revinclude: list[Include] = field(default_factory=list)
    cursor: str | None = None
    kept: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _bad(name: str, why: str) -> BadRequest:
    return BadRequest(f"Search parameter {name!r:.60}: {why}", expression=(name,))


class SearchParser:
    """Parses a search for one resource type; knows the base URL for absolute references."""

    def __init__(self, base_url: str, default_count: int, max_count: int) -> None:
        self._references = reference_pattern(base_url)
        self.default_count = default_count
        self.max_count = max_count

    # -- entry point -----------------------------------------------------------

    def parse(self, resource_type: str, params: list[tuple[str, str]]) -> ParsedSearch:
        search = ParsedSearch(resource_type, count=self.default_count)
        for name, value in params:
            if name in IGNORED_PARAMS or name.split(":")[0] in IGNORED_PARAMS:
                if name == "_cursor":
                    search.cursor = value
                continue
            if name.split(":")[0] in RESULT_PARAMS:
                self._result(search, name, value)
                search.kept.append((name, value))
                continue
            try:
                criterion = self._criterion(resource_type, name, value, search.unknown, depth=0)
            except BadRequest as error:  # point at the whole parameter, not a link of a chain
                raise BadRequest(error.diagnostics, expression=(name,)) from None
            if criterion is not None:
                search.criteria.append(criterion)
                search.kept.append((name, value))
        return search

    # -- criteria --------------------------------------------------------------

    def _criterion(
        self, rtype: str, name: str, value: str, unknown: list[str], depth: int
    ) -> Criterion | Has | None:
        if depth > _MAX_CHAIN_DEPTH:
            raise _bad(name, "chains may be at most three links long.")
        if name.startswith("_has:"):
            return self._has(rtype, name, value, unknown, depth)
        head, dot, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        param = search_params(rtype).get(code)
        if param is None:
            if depth:
                raise _bad(name, f"{rtype} has no search parameter {code!r:.40}.")
            unknown.append(name)
            return None
        if dot:
            return self._chained(param, modifier or None, name, rest, value, unknown, depth)
        typed = param.type == "reference" and modifier in param.targets
        if modifier and modifier not in _MODIFIERS[param.type] and not typed:
            raise _bad(name, f"the modifier :{modifier:.30} is not supported here.")
        found = modifier or None
        return Criterion(param, found, self._values(param, found, name, value))

    def _chained(
        self,
        param: SearchParam,
        modifier: str | None,
        name: str,
        rest: str,
        value: str,
        unknown: list[str],
        depth: int,
    ) -> Criterion:
        if param.type != "reference":
            raise _bad(name, "only reference parameters can be chained.")
        if modifier and modifier not in param.targets:
            raise _bad(name, f"{modifier:.40} is not a target of {param.code}.")
        types = [modifier] if modifier else [t for t in param.targets if t in SERVED_TYPES]
        links = []
        for target in types:
            if rest.split(".")[0].split(":")[0] in search_params(target):
                sub = self._criterion(target, rest, value, unknown, depth + 1)
                assert isinstance(sub, Criterion)
                links.append((target, sub))
        if not links:
            raise _bad(name, "no target type of the chain has that parameter.")
        return Criterion(param, modifier, (), chain=tuple(links))

    def _has(self, rtype: str, name: str, value: str, unknown: list[str], depth: int) -> Has:
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts):
            raise _bad(name, "_has takes the form _has:Type:reference:parameter.")
        _, other, ref_code, rest = parts
        if other not in SERVED_TYPES:
            raise _bad(name, f"{other:.40} is not a served resource type.")
        reference = search_params(other).get(ref_code)
        if reference is None or reference.type != "reference":
            raise _bad(name, f"{other} has no reference parameter {ref_code:.40}.")
        if reference.targets and rtype not in reference.targets:
            raise _bad(name, f"{other}.{ref_code} does not refer to {rtype}.")
        sub = self._criterion(other, rest, value, unknown, depth + 1)
        assert sub is not None
        return Has(other, reference, sub)

    # -- values ----------------------------------------------------------------

    def _values(
        self, param: SearchParam, modifier: str | None, name: str, value: str
    ) -> tuple[str | Range | bool, ...]:
        if modifier == "missing":
            if value not in ("true", "false"):
                raise _bad(name, ":missing takes true or false.")
            return (value == "true",)
        parts = split_escaped(value, ",")
        if any(p == "" for p in parts):
            raise _bad(name, "empty values are not allowed.")
        return tuple(self._value(param, modifier, name, p) for p in parts)

    def _value(self, param: SearchParam, modifier: str | None, name: str, raw: str) -> str | Range:
        kind = param.type
        if kind == "string":
            text = unescape(raw)
            return text if modifier == "exact" else fold(text)
        if kind == "token":
            return fold(unescape(raw)) if modifier == "text" else self._token(param, name, raw)
        if kind == "reference":
            return self._reference(param, modifier, name, unescape(raw))
        if kind in ("date", "number"):
            return _range(kind, name, raw)
        return unescape(raw)

    def _token(self, param: SearchParam, name: str, raw: str) -> str:
        pieces = split_escaped(raw, "|")
        if len(pieces) > 2 or pieces == ["", ""]:
            raise _bad(name, "a token is code, system|code, |code or system|.")
        if param.code == "_id" and len(pieces) > 1:
            raise _bad(name, "_id takes plain ids.")
        return "|".join(unescape(p) for p in pieces)

    def _reference(self, param: SearchParam, modifier: str | None, name: str, raw: str) -> str:
        match = self._references.match(raw)
        if match:
            kind, rid = match.group(1), match.group(2)
            if modifier and kind != modifier:
                raise _bad(name, f"the reference is not a {modifier:.40}.")
            if param.targets and kind not in param.targets:
                raise _bad(name, f"{kind:.40} is not a target type of {param.code}.")
            return f"{kind}/{rid}"
        if "/" in raw or ":" in raw:
            if raw.startswith(("http://", "https://", "urn:")):
                return raw  # a reference to another server, compared as written
            raise _bad(name, "a reference is Type/id, an id, or a URL.")
        # A bare id: any of the target types (or the one named by the :Type modifier).
        return f"*/{raw}" if modifier is None else f"{modifier}/{raw}"

    # -- result parameters -----------------------------------------------------

    def _result(self, search: ParsedSearch, name: str, value: str) -> None:
        base, _, modifier = name.partition(":")
        if base == "_count":
            if not value.isdigit():
                raise _bad(name, "_count must be a whole number.")
            search.count = min(int(value), self.max_count)
        elif base == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise _bad(name, "_total is none, estimate or accurate.")
            search.total = value
        elif base == "_summary":
            search.summary = value
        elif base == "_sort":
            search.sort = self._sort(search.resource_type, name, value)
        elif base in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                raise _bad(name, "the only modifier here is :iterate.")
            include = self._include(name, value, iterate=bool(modifier))
            (search.include if base == "_include" else search.revinclude).append(include)

    def _sort(self, rtype: str, name: str, value: str) -> list[SortKey]:
        keys = []
        for part in value.split(","):
            code = part.lstrip("-")
            if code != "_id" and code not in search_params(rtype):
                raise _bad(name, f"{rtype} cannot be sorted by {code!r:.40}.")
            keys.append(SortKey(code, part.startswith("-")))
        return keys

    def _include(self, name: str, value: str, *, iterate: bool) -> Include:
        if value == "*":
            return Include("*", None, None, iterate)
        pieces = value.split(":")
        if len(pieces) not in (2, 3) or pieces[0] not in SERVED_TYPES:
            raise _bad(name, "takes Type:parameter or Type:parameter:TargetType.")
        source, code = pieces[0], pieces[1]
        if code == "*":
            return Include(source, None, None, iterate)
        param = search_params(source).get(code)
        if param is None or param.type != "reference":
            raise _bad(name, f"{source} has no reference parameter {code!r:.40}.")
        target = pieces[2] if len(pieces) == 3 else None
        if target is not None and target not in param.targets:
            raise _bad(name, f"{target:.40} is not a target of {source}:{code}.")
        return Include(source, param, target, iterate)


def _range(kind: str, name: str, raw: str) -> Range:
    prefix = raw[:2] if raw[:2].isalpha() else "eq"
    body = raw[2:] if raw[:2].isalpha() else raw
    if prefix not in PREFIXES:
        raise _bad(name, f"{prefix!r:.10} is not a search prefix.")
    try:
        lo, hi = date_range(body) if kind == "date" else number_range(body)
    except ValueError:
        what = "a FHIR date (e.g. 2026, 2026-03, 2026-03-05T10:00:00Z)" if kind == "date" else ""
        raise _bad(name, f"the value is not {what or 'a number'}.") from None
    if prefix == "ap":
        lo, hi = _approximately(kind, lo, hi)
    return Range(prefix, lo, hi)


def _approximately(kind: str, lo: str | float, hi: str | float) -> tuple[str | float, str | float]:
    """`ap`: widen by 10% (numbers) or by 10% of the distance from now, at least a day."""
    if kind == "number":
        assert isinstance(lo, float) and isinstance(hi, float)
        spread = abs((lo + hi) / 2) * 0.1
        return lo - spread, hi + spread
    assert isinstance(lo, str) and isinstance(hi, str)
    moment = datetime.strptime(lo, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    margin = max(abs(datetime.now(UTC) - moment) * 0.1, timedelta(days=1))
    return shift(lo, -margin), shift(hi, margin)
