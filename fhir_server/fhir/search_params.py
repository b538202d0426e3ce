"""The search parameters this server supports, loaded as data.

Source: the official HL7 FHIR R4 (4.0.1) SearchParameter definitions in
`profiles/r4/search-parameters.json` (see `profiles/README.md`), plus any
SearchParameter (or Bundle of them) under `profiles/search/`. Adding a
parameter is adding a data entry: indexing (`fhir.indexing`) and query
building (`fhir.search_syntax`, `store.search_query`) read only this table.

Each definition's FHIRPath expression is split per base type and compiled
once. `.where(resolve() is X)` (which fhirpathpy cannot evaluate without a
resolver) is dropped from the expression; the parameter's `target` list then
keeps only references of type X. Plain paths (`Slot.schedule`) and unions of them skip
FHIRPath and walk the JSON directly, which keeps writes cheap (a union through
fhirpathpy costs about 100 us per resource).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import fhirpathpy
import orjson
from fhirpathpy.models import models as fhirpath_models

from fhir_server.fhir.datafiles import data_dir

SUPPORTED_TYPES = frozenset({"string", "token", "reference", "date", "uri", "number"})
_RESOLVE_IS = re.compile(r"\.where\(resolve\(\) is \w+\)")
_PLAIN_PATH = re.compile(r"^[A-Za-z]+(\.[A-Za-z]+)+$")
_ABSTRACT_BASES = {"Resource", "DomainResource"}

Evaluate = Callable[[dict[str, Any]], list[Any]]


@dataclass(frozen=True)
class SearchParam:
    """One search parameter on one resource type."""

    resource_type: str
    code: str
    type: str
    url: str
    expression: str
    targets: tuple[str, ...]
    # True when every element on the path has max=1: the value can be stored
    # as a scalar, which the embedded server can index.
    single: bool
    # FHIR datatype of the last path element (e.g. "instant", "code"), "" if unknown.
    element_type: str
    evaluate: Evaluate

    def values(self, resource: dict[str, Any]) -> list[Any]:
        return self.evaluate(resource)


def _split_union(expression: str) -> list[str]:
    """Top-level `|` alternatives of a FHIRPath expression."""
    parts, depth, current = [], 0, ""
    for char in expression:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def _head(part: str) -> str:
    return part.lstrip("(").split(".", 1)[0]


def _walk(path: tuple[str, ...]) -> Evaluate:
    def evaluate(resource: dict[str, Any]) -> list[Any]:
        current: list[Any] = [resource]
        for name in path:
            following: list[Any] = []
            for node in current:
                if isinstance(node, dict) and name in node:
                    value = node[name]
                    following.extend(value if isinstance(value, list) else [value])
            current = following
        return current

    return evaluate


def _choice(path: str) -> bool:
    """Whether the path ends at a choice element (`ChargeItem.occurrence` is `occurrence[x]`,
    stored as `occurrenceDateTime`, ...), which only FHIRPath's model resolves."""
    return f"{path}[x]" in _elements()


def _compile(expression: str) -> Evaluate:
    parts = _split_union(expression)
    if all(_PLAIN_PATH.match(p) and not _choice(p) for p in parts):  # the indexer drops repeats
        walks = [_walk(tuple(p.split(".")[1:])) for p in parts]
        return walks[0] if len(walks) == 1 else lambda r: [v for w in walks for v in w(r)]
    compiled = fhirpathpy.compile(expression, model=fhirpath_models["r4"])

    def evaluate(resource: dict[str, Any]) -> list[Any]:
        return list(compiled(resource, {}))

    return evaluate


@cache
def _elements() -> dict[str, dict[str, Any]]:
    """Element path -> snapshot element, for every served type."""
    raw = (data_dir("profiles") / "r4" / "structure-definitions.json").read_bytes()
    out: dict[str, dict[str, Any]] = {}
    for entry in orjson.loads(raw)["entry"]:
        for element in entry["resource"]["snapshot"]["element"]:
            out[element["path"]] = element
    return out


def _shape(expression: str) -> tuple[bool, str]:
    """(single-valued, last element's type) of a plain path; (False, "") otherwise."""
    if not _PLAIN_PATH.match(expression):
        return False, ""
    parts = expression.split(".")
    if parts[1:] == ["meta", "lastUpdated"]:
        return True, "instant"
    elements = _elements()
    single, element_type = True, ""
    for i in range(2, len(parts) + 1):
        element = elements.get(".".join(parts[:i]))
        if element is None:
            return False, ""
        single = single and element.get("max") == "1"
        types = element.get("type", [])
        element_type = types[0]["code"] if len(types) == 1 else ""
    if parts[1:] == ["id"]:
        element_type = "id"
    return single, element_type


def _definitions() -> Iterator[dict[str, Any]]:
    bundle = orjson.loads((data_dir("profiles") / "r4" / "search-parameters.json").read_bytes())
    for entry in bundle["entry"]:
        yield entry["resource"]
    custom = data_dir("profiles") / "search"
    for path in sorted(custom.glob("*.json")) if custom.is_dir() else []:
        document = orjson.loads(path.read_bytes())
        if document.get("resourceType") == "Bundle":
            yield from (e["resource"] for e in document.get("entry", []))
        else:
            yield document


def _for_type(definition: dict[str, Any], rtype: str) -> SearchParam | None:
    expression = definition.get("expression")
    if not expression or definition["type"] not in SUPPORTED_TYPES:
        return None
    wanted = {rtype, *_ABSTRACT_BASES}
    parts = [p for p in _split_union(expression) if _head(p) in wanted]
    if not parts:
        return None
    parts = [
        _RESOLVE_IS.sub("", rtype + p[len(_head(p)) :] if _head(p) in _ABSTRACT_BASES else p)
        for p in parts
    ]
    own = " | ".join(parts)
    single, element_type = _shape(own) if len(parts) == 1 else (False, "")
    return SearchParam(
        resource_type=rtype,
        code=definition["code"],
        type=definition["type"],
        url=definition["url"],
        expression=own,
        targets=tuple(definition.get("target", ())),
        single=single,
        element_type=element_type,
        evaluate=_compile(own),
    )


@cache
def search_params(resource_type: str) -> dict[str, SearchParam]:
    """code -> parameter for a served type (the common `_id`, `_lastUpdated`... included)."""
    out: dict[str, SearchParam] = {}
    for definition in _definitions():
        bases = set(definition.get("base", ()))
        if resource_type in bases or bases & _ABSTRACT_BASES:
            param = _for_type(definition, resource_type)
            if param is not None:
                out[param.code] = param
    return out


def reference_params(resource_type: str) -> list[SearchParam]:
    return [p for p in search_params(resource_type).values() if p.type == "reference"]
