"""The packaged CodeSystems and ValueSets, and membership tests against them."""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_server.fhir.datafiles import load_json_folder


@cache
def resources_by_type() -> dict[str, list[dict[str, Any]]]:
    """CodeSystem and ValueSet resources from `terminology/`, by resourceType."""
    out: dict[str, list[dict[str, Any]]] = {"CodeSystem": [], "ValueSet": []}
    for doc in load_json_folder("terminology"):
        kind = doc.get("resourceType")
        if kind in out:
            out[kind].append(doc)
    return out


def _concept_codes(concepts: list[dict[str, Any]]) -> set[str]:
    codes: set[str] = set()
    for concept in concepts:
        codes.add(concept["code"])
        codes |= _concept_codes(concept.get("concept", []))
    return codes


@cache
def valueset_codes(url: str) -> dict[str, frozenset[str]] | None:
    """System -> allowed codes for an enumerable ValueSet; None when not enumerable.

    Grammars (MIME types, UCUM, languages) are not enumerated here, so a
    binding to them is not checked against a list.
    """
    systems = {cs["url"]: cs for cs in resources_by_type()["CodeSystem"]}
    valueset = next((vs for vs in resources_by_type()["ValueSet"] if vs["url"] == url), None)
    if valueset is None:
        return None
    allowed: dict[str, frozenset[str]] = {}
    for include in valueset.get("compose", {}).get("include", []):
        system = include.get("system")
        if system is None:
            return None
        if "concept" in include:
            codes = {c["code"] for c in include["concept"]}
        elif system in systems:
            codes = _concept_codes(systems[system].get("concept", []))
        else:
            return None
        allowed[system] = frozenset(allowed.get(system, frozenset()) | codes)
    return allowed or None
