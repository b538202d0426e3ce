"""The route table: a request's method and path classified once into an `Interaction`.

Both the dispatcher (`rest.dispatch`, which runs the interaction) and the
access policy (`auth.policy`, which decides whether the token may) read the
same `Interaction`, so they can never disagree about what a URL means (the
way Medplum's `fhir-router` pairs each route with its handler). Pure: no I/O.

The table is ordered: literal segments (`_search`, `_history`) come before
the `:id` they would otherwise match. A path that matches a pattern with
another method is a 405; a path matching no pattern is a 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhir_server.fhir.errors import BadRequest, FhirError, MethodNotAllowed, NotFound
from fhir_server.fhir.resource_types import ADMIN_TYPES, CONFORMANCE_TYPES, SERVED_TYPES

# FHIR's id pattern, less ids of dots alone: `Patient/..` would read as a path step up.
_ID = re.compile(r"^(?!\.+$)[A-Za-z0-9\-.]{1,64}$")
_SERVED = frozenset(SERVED_TYPES)
# Routed like the served types: only an admin's reads and searches get through.
_ROUTED = _SERVED | frozenset(ADMIN_TYPES)
# Read-only types served from packaged files (and the OperationDefinitions of the
# registered operations): no token is needed to read them. Their operations
# (`Measure/[id]/$evaluate-measure`) are routed like any other.
OPEN_TYPES = frozenset((*CONFORMANCE_TYPES, "OperationDefinition"))
_ROUTED = _ROUTED | OPEN_TYPES

SYSTEM, TYPE, INSTANCE = "system", "type", "instance"
_WRITES = frozenset({"create", "update", "patch", "delete"})


def check_id(rid: str) -> str:
    if not _ID.match(rid):
        raise BadRequest(
            "A resource id is 1-64 letters, digits, '-' or '.' (not dots alone).",
            expression=("Resource.id",),
        )
    return rid


@dataclass(frozen=True)
class Interaction:
    """What a request asks for, from its method and path alone.

    `kind` is one of: read, vread, update, patch, delete, create, search,
    search-system, history-instance, history-type, history-system, batch (a
    batch or transaction Bundle), operation-system, operation-type,
    operation-instance, conformance, and `invalid` (then `error` says why).
    """

    kind: str
    resource_type: str | None = None
    rid: str | None = None
    version: str | None = None
    operation: str | None = None
    conditional: bool = False  # PUT or DELETE on a type: the target is found by criteria
    changes: bool = False  # a write, or an operation invoked with POST (may change state)
    error: FhirError | None = field(default=None, compare=False)

    @property
    def level(self) -> str:
        if self.rid is not None:
            return INSTANCE
        return TYPE if self.resource_type is not None else SYSTEM


@dataclass(frozen=True)
class Route:
    method: str  # "*" for operations (GET or POST, checked by the operation)
    pattern: tuple[str, ...]
    kind: str

    def bind(self, path: list[str]) -> dict[str, str] | None:
        """The pattern's variables for this path, or None when the path does not fit."""
        if len(path) != len(self.pattern):
            return None
        bound: dict[str, str] = {}
        for part, segment in zip(self.pattern, path, strict=True):
            if part.startswith(":"):
                if segment.startswith(("$", "_")) and part != ":vid":
                    return None
                bound[part[1:]] = segment
            elif part == "$op":
                if not segment.startswith("$"):
                    return None
                bound["op"] = segment[1:]
            elif part != segment:
                return None
        return bound


ROUTES: tuple[Route, ...] = (
    Route("POST", (), "batch"),
    Route("GET", (), "search-system"),
    Route("*", ("$op",), "operation-system"),
    Route("GET", ("_history",), "history-system"),
    Route("GET", (":type",), "search"),
    Route("POST", (":type",), "create"),
    Route("PUT", (":type",), "update"),
    Route("DELETE", (":type",), "delete"),
    Route("POST", (":type", "_search"), "search"),
    Route("GET", (":type", "_history"), "history-type"),
    Route("*", (":type", "$op"), "operation-type"),
    Route("GET", (":type", ":id"), "read"),
    Route("PUT", (":type", ":id"), "update"),
    Route("PATCH", (":type", ":id"), "patch"),
    Route("DELETE", (":type", ":id"), "delete"),
    Route("*", (":type", ":id", "$op"), "operation-instance"),
    Route("GET", (":type", ":id", "_history"), "history-instance"),
    Route("GET", (":type", ":id", "_history", ":vid"), "vread"),
)


def _invalid(error: FhirError, rtype: str | None = None) -> Interaction:
    return Interaction("invalid", rtype, error=error)


def _shape(pattern: tuple[str, ...], rtype: str | None) -> str:
    """A pattern as a client would read it in an error message."""
    words = [rtype or "" if p == ":type" else "[id]" if p == ":id" else p for p in pattern]
    return "/".join(words) or "the base URL"


def classify(method: str, path: list[str]) -> Interaction:
    """The interaction of a request; never raises (an `invalid` one carries the error)."""
    head = path[0] if path else ""
    if head == "metadata":  # GET has its own HTTP route; any other method lands here
        return _invalid(MethodNotAllowed(f"{method} is not supported on metadata."))
    if head in OPEN_TYPES and not path[-1].startswith("$"):
        return _conformance(method, path)
    if head and not head.startswith(("$", "_")) and head not in _ROUTED:
        return _invalid(NotFound(f"Resource type {head!r:.40} is not served here."))
    fitting: Route | None = None
    for route in ROUTES:
        bound = route.bind(path)
        if bound is None:
            continue
        fitting = fitting or route
        if route.method in ("*", method):
            return _bound(route, bound, method)
    if fitting is None:
        return _invalid(NotFound("No such endpoint."), head or None)
    what = _shape(fitting.pattern, head)
    return _invalid(MethodNotAllowed(f"{method} is not supported on {what}."), head or None)


def _bound(route: Route, bound: dict[str, str], method: str) -> Interaction:
    rid = bound.get("id")
    if rid is not None:
        try:
            check_id(rid)
        except BadRequest as error:
            return _invalid(error, bound.get("type"))
    return Interaction(
        route.kind,
        bound.get("type"),
        rid,
        version=bound.get("vid"),
        operation=bound.get("op"),
        conditional=route.kind in ("update", "delete") and rid is None,
        changes=route.kind in _WRITES or (route.method == "*" and method != "GET"),
    )


def _conformance(method: str, path: list[str]) -> Interaction:
    rtype = path[0]
    searching = method == "POST" and path[1:] == ["_search"]
    if method != "GET" and not searching:
        return _invalid(MethodNotAllowed(f"{method} is not supported on {rtype} (read-only)."))
    if len(path) > 2:
        return _invalid(NotFound("No such endpoint."), rtype)
    rid = path[1] if len(path) == 2 and path[1] != "_search" else None
    return Interaction("conformance", rtype, rid)
