"""The R4 StructureDefinitions compiled into a tree of element rules.

Only what `fhir.resources` does not already check is kept: minimum
cardinality, required bindings and the error-level invariants. The tree is
built once from `profiles/r4/structure-definitions.json` and the datatype
table in `terminology/datatype-bindings.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import fhirpathpy
import orjson
from fhirpathpy.models import models as fhirpath_models

from fhir_server.fhir.datafiles import data_dir

# Invariants every element carries or that concern features we do not serve
# (contained resources, extension shape): checked by the models or not relevant.
_SKIPPED_CONSTRAINT_PREFIXES = ("ele-", "dom-", "ext-")


# The elements each booking-relevant invariant is about, read from the constraint
# text in the R4 definitions (hl7.org/fhir/R4/appointment.html#invs and friends),
# so that an OperationOutcome points at them rather than at the whole resource.
_INVARIANT_ELEMENTS: dict[str, tuple[str, ...]] = {
    "app-1": ("type", "actor"),
    "app-2": ("start", "end"),
    "app-3": ("start", "end"),
    "app-4": ("cancelationReason",),
    "apr-1": ("participantType", "actor"),
    "pat-1": ("name", "telecom", "address", "organization"),
}


@dataclass(frozen=True)
class Constraint:
    key: str
    human: str
    check: Callable[..., list[Any]]
    expression: str = ""
    elements: tuple[str, ...] = ()


@dataclass
class ElementRule:
    name: str
    min: int = 0
    many: bool = False
    types: tuple[str, ...] = ()
    valueset: str | None = None
    children: dict[str, ElementRule] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)


@cache
def _structure_definitions() -> dict[str, dict[str, Any]]:
    bundle = orjson.loads((data_dir("profiles") / "r4" / "structure-definitions.json").read_bytes())
    return {e["resource"]["type"]: e["resource"] for e in bundle["entry"]}


def _compile_constraint(raw: dict[str, Any]) -> Constraint:
    compiled = fhirpathpy.compile(raw["expression"], model=fhirpath_models["r4"])
    return Constraint(
        key=raw["key"],
        human=raw.get("human", raw["key"]),
        check=compiled,
        expression=raw["expression"],
        elements=_INVARIANT_ELEMENTS.get(raw["key"], ()),
    )


def _rule_from_element(element: dict[str, Any]) -> ElementRule:
    binding = element.get("binding") or {}
    return ElementRule(
        name=element["path"].rsplit(".", 1)[-1],
        min=int(element.get("min", 0)),
        many=element.get("max", "1") != "1",
        types=tuple(t["code"] for t in element.get("type", [])),
        valueset=(
            binding.get("valueSet", "").split("|")[0]
            if binding.get("strength") == "required"
            else None
        ),
        constraints=[
            _compile_constraint(c)
            for c in element.get("constraint", [])
            if c.get("severity") == "error"
            and "expression" in c
            and not c["key"].startswith(_SKIPPED_CONSTRAINT_PREFIXES)
        ],
    )


@cache
def resource_rule(resource_type: str) -> ElementRule:
    """The root rule of a served resource type (children nested by path)."""
    sd = _structure_definitions()[resource_type]
    by_path: dict[str, ElementRule] = {}
    root: ElementRule | None = None
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        rule = _rule_from_element(element)
        by_path[path] = rule
        if "." not in path:
            root = rule
            continue
        parent = by_path[path.rsplit(".", 1)[0]]
        parent.children[rule.name] = rule
        reference = element.get("contentReference")
        if reference:
            rule.children = by_path[reference.lstrip("#")].children
    assert root is not None
    return root


@cache
def datatype_rules() -> dict[str, ElementRule]:
    """Rules for the common datatypes, from `terminology/datatype-bindings.json`."""
    table = orjson.loads((data_dir("terminology") / "datatype-bindings.json").read_bytes())
    rules: dict[str, ElementRule] = {}

    def node(path: str) -> ElementRule:
        head, *rest = path.split(".")
        current = rules.setdefault(head, ElementRule(name=head))
        for part in rest:
            current = current.children.setdefault(part, ElementRule(name=part))
        return current

    for path, valueset in table["bindings"].items():
        node(path).valueset = valueset
    for path in table["required"]:
        node(path).min = 1
    return rules


@cache
def top_level_elements(resource_type: str) -> dict[str, tuple[bool, bool]] | None:
    """Top-level element name -> (is in the summary, is mandatory); None for unknown types."""
    sd = _structure_definitions().get(resource_type)
    if sd is None:
        return None
    out: dict[str, tuple[bool, bool]] = {}
    for element in sd["snapshot"]["element"]:
        parts = element["path"].split(".")
        if len(parts) == 2:
            name = parts[1].replace("[x]", "")
            out[name] = (bool(element.get("isSummary")), int(element.get("min", 0)) > 0)
    return out
