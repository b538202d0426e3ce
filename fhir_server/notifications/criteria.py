"""Matching an R4 Subscription's `criteria` against one resource.

The criteria is a search URL (`Appointment?actor=Practitioner/123`,
`Encounter?status=finished`, `ChargeItem?entered-date=ge2026-01-01`). Events
concern one resource that was just written, so the match is evaluated on the
resource itself rather than by running a search (`fhir.resource_match`): same
parser, same search parameter definitions, same answer, no query, and it also
holds for the version being written inside a unit of work that the search
index cannot see yet. Criteria the matcher cannot evaluate (an unknown
parameter, a chain, `_has`, a type whose changes are not announced) make the
Subscription invalid: it goes to `error` instead of silently matching
everything.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final
from urllib.parse import parse_qsl

from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.fhir.resource import Resource
from fhir_server.fhir.resource_match import Predicate, Unmatchable, predicate
from fhir_server.fhir.search_syntax import RESULT_PARAMS, SearchParser

# The types whose changes are announced: Appointment by the booking engine's events,
# Encounter and ChargeItem by every write of them (`changes.record_change`).
SUBSCRIBABLE: Final = ("Appointment", "Encounter", "ChargeItem")


class CriteriaError(ValueError):
    """The criteria names a type or parameter the matcher does not support."""


@lru_cache(maxsize=1024)
def compile_query(resource_type: str, query: str, base_url: str) -> Predicate:
    """The predicate of a search query (`name=value&...`) on one resource of the type.

    Kept per query: every event is matched against every live Subscription, and
    their criteria change far less often than bookings come.
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    try:
        search = SearchParser(base_url, 1, 1).parse(resource_type, pairs)
    except BadRequest as exc:
        raise CriteriaError(exc.diagnostics) from None
    ignored = search.unknown + [n for n, _ in pairs if n.split(":")[0] in RESULT_PARAMS]
    if ignored:
        raise CriteriaError(
            f"Search parameter {ignored[0]!r:.60} is not supported in Subscription criteria."
        )
    try:
        return predicate(search.criteria, ResourceIndexer(base_url))
    except Unmatchable as exc:
        raise CriteriaError(str(exc)) from None


def compile_criteria(criteria: str, base_url: str) -> tuple[str, Predicate]:
    """(resource type, predicate) for a criteria string; raises CriteriaError."""
    resource_type, _, query = criteria.partition("?")
    if resource_type not in SUBSCRIBABLE:
        raise CriteriaError(f"Subscription criteria name one of {', '.join(SUBSCRIBABLE)}.")
    return resource_type, compile_query(resource_type, query, base_url)


def matches(criteria: str, resource: Resource, base_url: str) -> bool:
    """False for criteria that cannot be compiled (activation reports those)."""
    try:
        resource_type, test = compile_criteria(criteria, base_url)
    except CriteriaError:
        return False
    return resource.get("resourceType") == resource_type and test(resource)
