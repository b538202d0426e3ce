"""A `$export` kick-off's parameters, checked and read (Bulk Data Access 2.0, pure).

Every bad value is a `BadRequest` naming the parameter, raised before a job
exists: `_outputFormat` other than NDJSON, an unknown or unexportable `_type`,
a `_since` that is not an instant, a `_typeFilter` that is not `Type?query`
over a requested type with known search parameters, and the optional
parameters this server does not implement (`_elements`, `patient`,
`includeAssociatedData`), which would otherwise be silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhir_server.auth.compartment import DIRECTORY_TYPES, compartment_params
from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.instants import fhir_instant, parse_instant
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.fhir.search_syntax import SearchParser

# application/fhir+ndjson and the two abbreviations the IG lets a client send.
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
NDJSON = "application/fhir+ndjson"
UNSUPPORTED = ("_elements", "patient", "includeAssociatedData")
# Subscriptions carry the EHRs' endpoint headers (credentials): never exported.
NOT_EXPORTED = frozenset({"Subscription"})
LEVELS = ("system", "patient", "group")


@dataclass(frozen=True)
class ExportRequest:
    """What to export. `types` empty: every type of the level the token may read."""

    level: str
    group: str | None = None
    types: tuple[str, ...] = ()
    since: str | None = None
    type_filters: tuple[tuple[str, str], ...] = ()  # (type, query string)


def level_types(level: str) -> tuple[str, ...]:
    """The types a level exports: all served types at system level; at patient and group
    level the patient compartment's types that hold patient data (not the public
    directory, whose Schedules name practitioners, nor the cohorts themselves)."""
    served = [t for t in SERVED_TYPES if t not in NOT_EXPORTED]
    if level == "system":
        return tuple(served)
    compartment = compartment_params()
    return tuple(
        t
        for t in served
        if (t == "Patient" or t in compartment) and t not in DIRECTORY_TYPES and t != "Group"
    )


def parse_request(
    level: str, group: str | None, inputs: Mapping[str, Sequence[str]], parser: SearchParser
) -> ExportRequest:
    """The kick-off's inputs (query or Parameters, by name) as an `ExportRequest`."""
    for name in UNSUPPORTED:
        if inputs.get(name):
            raise BadRequest(f"{name} is not supported by this server.", expression=(name,))
    for value in inputs.get("_outputFormat", ()):
        if value not in OUTPUT_FORMATS:
            raise BadRequest(
                f"_outputFormat {value!r:.60} is not supported; use {NDJSON}.",
                expression=("_outputFormat",),
            )
    allowed = level_types(level)
    types = tuple(dict.fromkeys(t for v in inputs.get("_type", ()) for t in v.split(",") if t))
    for rtype in types:
        if rtype not in allowed:
            raise BadRequest(
                f"_type {rtype!r:.60} is not exported at {level} level; "
                f"use some of {', '.join(allowed)}.",
                expression=("_type",),
            )
    return ExportRequest(
        level=level,
        group=group,
        types=types,
        since=_since(inputs.get("_since", ())),
        type_filters=_type_filters(inputs.get("_typeFilter", ()), types or allowed, parser),
    )


def _since(values: Sequence[str]) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("_since may be given once.", expression=("_since",))
    try:
        moment = parse_instant(values[0])
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadRequest(
            "_since must be a FHIR instant with a time zone (e.g. 2024-01-01T00:00:00Z).",
            expression=("_since",),
        )
    return fhir_instant(moment)


def _type_filters(
    values: Sequence[str], types: Sequence[str], parser: SearchParser
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for value in values:
        rtype, mark, query = value.partition("?")
        if not mark or not query:
            raise BadRequest(
                f"_typeFilter {value!r:.80} is not of the form Type?query.",
                expression=("_typeFilter",),
            )
        if rtype not in types:
            raise BadRequest(
                f"_typeFilter names {rtype!r:.40}, which this export does not include.",
                expression=("_typeFilter",),
            )
        search = parser.parse(rtype, parse_qsl(query, keep_blank_values=True))
        if search.unknown or not search.criteria:
            names = ", ".join(search.unknown) or query
            raise BadRequest(
                f"_typeFilter for {rtype} has unknown or no search parameters: {names:.120}.",
                expression=("_typeFilter",),
            )
        out.append((rtype, query))
    return tuple(out)
