"""Running a parsed search: chains, `_has`, keyset pages, totals, `_include`/`_revinclude`.

Pages are keyset pages: the cursor is the sort values and id of the last (or
first) row shown, and the next page is "rows strictly after it in the sort
order". Resources created or changed meanwhile therefore never shift a page:
no row is skipped or repeated, unlike skip/limit over a moving set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir.errors import BadRequest, Forbidden
from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.fhir.search_params import SearchParam, reference_params, search_params
from fhir_server.fhir.search_syntax import Criterion, Has, Include, SearchParser
from fhir_server.store.resources import ResourceStore
from fhir_server.store.search_query import (
    INDEXES,
    LIVE,
    Clause,
    after,
    conjoin,
    criterion_clause,
    indexed_values,
    live,
    reference_clause,
    sort_values,
)

# Most resources a chain or `_has` may match before the search is refused as too broad.
CHAIN_LIMIT = 5000
# Most resources `_revinclude` adds per page, and rounds of `:iterate`.
REVINCLUDE_LIMIT = 1000
_ITERATE_ROUNDS = 4

# What a caller may read of a type, as criteria every query over it must also meet
# (its compartment, a scope's restriction): [] for all of it, None for none of it.
# Absent (None instead of a Reach), the caller reads everything (auth off).
Reach = Callable[[str], list[Criterion | Has] | None]


def reach_of(parser: SearchParser, limits: ReadLimits | None) -> Reach | None:
    """A caller's read limits as parsed criteria per type, for every query made for it."""
    if limits is None:
        return None

    def reach(rtype: str) -> list[Criterion | Has] | None:
        extra = limits.of(rtype)
        if extra is None:
            return None
        return parser.parse(rtype, list(extra)).criteria if extra else []

    return reach


def _required(rtype: str, reach: Reach | None) -> list[Criterion | Has]:
    """The criteria a chain or `_has` link into `rtype` must carry; 403 when it may not go."""
    if reach is None:
        return []
    extra = reach(rtype)
    if extra is None:
        raise Forbidden(f"The search reaches {rtype}, which the access token may not read.")
    return extra


@dataclass(frozen=True)
class Found:
    resource_type: str
    doc: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.doc["_id"]


@dataclass
class Page:
    rows: list[Found]
    more: bool  # there are rows beyond this page in the direction of travel


def _compare(fields: list[tuple[str, int]], a: list[Any], b: list[Any]) -> int:
    """Order of two rows' sort keys; a missing key (None) is lowest, as in MongoDB."""
    for (_, direction), x, y in zip(fields, a, b, strict=True):
        if x != y:
            greater = y is None or (x is not None and x > y)
            return direction if greater else -direction
    return 0


class SearchEngine:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store

    async def ensure_indexes(self) -> None:
        for rtype, specs in INDEXES.items():
            collection = self.store.collection(rtype)
            for fields in specs:
                await collection.create_index([(f, 1) for f in fields])

    # -- criteria to filters -----------------------------------------------------

    async def clause(
        self, rtype: str, criterion: Criterion | Has, reach: Reach | None = None
    ) -> Clause:
        """The filter of one criterion; its chain and `_has` links run within `reach`."""
        if isinstance(criterion, Has):
            return Clause({"_id": {"$in": await self._has_ids(rtype, criterion, reach)}})
        if criterion.chain:
            references = [
                f"{target}/{rid}"
                for target, sub in criterion.chain
                for rid in await self.ids(
                    target, [sub, *_required(target, reach)], CHAIN_LIMIT + 1, reach
                )
            ]
            if len(references) > CHAIN_LIMIT:
                raise BadRequest(
                    f"The chained parameter {criterion.param.code} matches too many resources.",
                    expression=(criterion.param.code,),
                )
            return reference_clause(criterion.param, references)
        return criterion_clause(criterion)

    async def _has_ids(self, rtype: str, has: Has, reach: Reach | None) -> list[str]:
        prefix = f"{rtype}/"
        criteria = [has.criterion, *_required(has.resource_type, reach)]
        collection = self.store.collection(has.resource_type)
        ids: set[str] = set()
        for one in await self.filters(has.resource_type, criteria, reach):
            async for doc in collection.find(one, {"idx": 1}).limit(CHAIN_LIMIT + 1):
                ids.update(
                    r[len(prefix) :]
                    for r in indexed_values(doc, has.reference)
                    if isinstance(r, str) and r.startswith(prefix)
                )
        return sorted(ids)

    async def filters(
        self, rtype: str, criteria: list[Criterion | Has], reach: Reach | None = None
    ) -> list[dict[str, Any]]:
        """Disjoint filters whose union is the search (one, unless a clause has branches).

        A search pinned to one `_id` is not branched: the key already picks its one row,
        and each branch would read that row again (a second query for nothing)."""
        clauses = [await self.clause(rtype, c, reach) for c in criteria]
        keyed = any(_one_key(c.plain) for c in clauses)
        branched = None if keyed else next((c for c in clauses if c.branches), None)
        plains = [c.plain for c in clauses if c is not branched]
        if branched is None:
            return [live(conjoin(*plains))]
        return [live(conjoin(branch, *plains)) for branch in branched.branches]

    # -- running -----------------------------------------------------------------

    async def ids(
        self, rtype: str, criteria: list[Criterion | Has], limit: int, reach: Reach | None = None
    ) -> list[str]:
        found: list[str] = []
        for one in await self.filters(rtype, criteria, reach):
            cursor = self.store.collection(rtype).find(one, {"_id": 1}).limit(limit)
            found += [doc["_id"] async for doc in cursor]
        return sorted(set(found))[:limit]

    async def count(self, rtype: str, filters: list[dict[str, Any]]) -> int:
        """Counted by walking the matching ids: the embedded server's `count` ignores indexes
        (seconds at 10,000 rows), a `find` of ids uses them (milliseconds)."""
        collection = self.store.collection(rtype)
        total = 0
        for one in filters:
            async for _ in collection.find(one, {"_id": 1}):
                total += 1
        return total

    async def page(
        self,
        rtype: str,
        filters: list[dict[str, Any]],
        fields: list[tuple[str, int]],
        cursor: list[Any] | None,
        *,
        forward: bool,
        count: int,
    ) -> Page:
        """`count` rows after (forward) or before the cursor, in sort order.

        Whole rows, no projection: the embedded server applies a projection by
        deep-copying each row in Python, which costs more than the `idx` it saves.
        """
        order = fields if forward else [(f, -d) for f, d in fields]
        keysets = after(fields, cursor, forward=forward) if cursor is not None else [{}]
        collection = self.store.collection(rtype)
        docs: list[dict[str, Any]] = []
        for one in filters:
            taken: list[dict[str, Any]] = []
            for keyset in keysets:
                if len(taken) > count:
                    break
                query = collection.find(conjoin(one, keyset)).sort(order)
                taken += [doc async for doc in query.limit(count + 1 - len(taken))]
            docs += taken
        if len(filters) > 1:

            def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
                return _compare(order, sort_values(a, fields), sort_values(b, fields))

            docs.sort(key=functools.cmp_to_key(compare))
        more = len(docs) > count
        docs = docs[:count]
        if not forward:
            docs.reverse()
        return Page([Found(rtype, d) for d in docs], more)

    # -- _include / _revinclude ------------------------------------------------------

    async def included(
        self,
        matches: list[Found],
        include: list[Include],
        revinclude: list[Include],
        reach: Reach | None = None,
    ) -> list[Found]:
        """The `_include`/`_revinclude` rows of a page, only those within `reach`."""
        seen = {m.key for m in matches}
        out: list[Found] = []
        frontier = matches
        for round_ in range(_ITERATE_ROUNDS):
            wanted_inc = [i for i in include if round_ == 0 or i.iterate]
            wanted_rev = [i for i in revinclude if round_ == 0 or i.iterate]
            if not frontier or not (wanted_inc or wanted_rev):
                break
            found = await self._forward(frontier, wanted_inc, reach)
            found += await self._reverse(frontier, wanted_rev, reach)
            fresh = []
            for item in found:
                if item.key not in seen:
                    seen.add(item.key)
                    fresh.append(item)
            out += fresh
            frontier = fresh
        return out

    async def _forward(
        self, sources: list[Found], include: list[Include], reach: Reach | None
    ) -> list[Found]:
        wanted: dict[str, set[str]] = {}
        for item in sources:
            for inc in include:
                if inc.source_type not in ("*", item.resource_type):
                    continue
                params = [inc.param] if inc.param else reference_params(item.resource_type)
                for param in params:
                    for ref in _references(item, param):
                        kind, _, rid = ref.partition("/")
                        if kind in SERVED_TYPES and inc.target_type in (None, kind):
                            wanted.setdefault(kind, set()).add(rid)
        out: list[Found] = []
        for kind, ids in wanted.items():
            out += await self._by_ids(kind, ids, reach)
        return out

    async def _reachable(self, rtype: str, reach: Reach | None) -> list[dict[str, Any]] | None:
        """Filters (ORed) that keep a query over `rtype` within reach; None: out of reach."""
        extra = [] if reach is None else reach(rtype)
        if extra is None:
            return None
        return await self.filters(rtype, extra) if extra else [{}]

    async def _by_ids(self, rtype: str, ids: Iterable[str], reach: Reach | None) -> list[Found]:
        """The live rows of `ids` within reach, by id: one query per reach filter (they are
        ORed), not one per id, so a page that includes 100 Patients costs one round trip."""
        within = await self._reachable(rtype, reach)
        wanted = sorted(ids)
        collection = self.store.collection(rtype)
        found: dict[str, dict[str, Any]] = {}
        for one in within if within is not None and wanted else ():
            missing = [rid for rid in wanted if rid not in found]
            if not missing:
                break
            async for doc in collection.find(conjoin({"_id": {"$in": missing}, **LIVE}, one)):
                found.setdefault(str(doc["_id"]), doc)
        return [Found(rtype, found[rid]) for rid in wanted if rid in found]

    async def _reverse(
        self, targets: list[Found], revinclude: list[Include], reach: Reach | None
    ) -> list[Found]:
        out: list[Found] = []
        for inc in revinclude:
            within = await self._reachable(inc.source_type, reach)
            if within is None:
                continue
            params = [inc.param] if inc.param else reference_params(inc.source_type)
            for param in params:
                refs = [  # `Source:param:Type` follows the param only to that type
                    f"{t.resource_type}/{t.doc['_id']}"
                    for t in targets
                    if (not param.targets or t.resource_type in param.targets)
                    and inc.target_type in (None, t.resource_type)
                ]
                if not refs or inc.source_type not in SERVED_TYPES:
                    continue
                query = live(reference_clause(param, refs).plain)
                collection = self.store.collection(inc.source_type)
                for one in within:
                    cursor = collection.find(conjoin(query, one)).limit(REVINCLUDE_LIMIT)
                    out += [Found(inc.source_type, d) async for d in cursor]
        return out


def _references(item: Found, param: SearchParam) -> list[str]:
    return [v for v in indexed_values(item.doc, param) if isinstance(v, str)]


def revinclude_names(rtype: str) -> list[str]:
    """`Source:param` for every reference parameter that can point at `rtype`."""
    return [
        f"{source}:{p.code}"
        for source in SERVED_TYPES
        for p in search_params(source).values()
        if p.type == "reference" and rtype in p.targets
    ]


def _one_key(plain: dict[str, Any]) -> bool:
    """Whether a filter pins `_id` to a single value."""
    key = plain.get("_id")
    return isinstance(key, dict) and list(key) == ["$eq"]
