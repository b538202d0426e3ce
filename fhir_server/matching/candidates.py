"""Finding the stored Patients that may be the one given, then scoring them.

Candidates come from the store's indexed search, a few small queries
("blocks") per Patient, never from reading every Patient: each identifier
(`identifier=system|value`), the birth date (`birthdate`), each name as
family and given and swapped (`family` + `given`, folded prefix match), and
each phone or e-mail (`match-telecom`, the custom parameter that indexes
phones by their last 9 digits and e-mails lower-cased). Each block returns at
most `BLOCK_SIZE` Patients. The queries run under the caller's read limits,
so scoring and the "only one certain match" rule never see a Patient the
caller could not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.matching.score import Assessment, assess, identifiers, telecom_keys

BLOCK_SIZE = 50
_ESCAPED = str.maketrans({"\\": "\\\\", ",": "\\,", "$": "\\$", "|": "\\|"})


class PatientSearch(Protocol):
    """The part of the REST searcher (`rest.services.Searcher`) matching uses."""

    async def search_bundle(
        self,
        resource_type: str | None,
        params: list[tuple[str, str]],
        *,
        strict: bool,
        limits: ReadLimits | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Candidate:
    """A stored Patient and how well it matches."""

    resource: dict[str, Any]
    assessment: Assessment


def _escape(value: str) -> str:
    """A search value with FHIR's special characters escaped (so a comma is not an OR)."""
    return value.translate(_ESCAPED)


def _names(patient: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name in patient.get("name") or []:
        if not isinstance(name, dict):
            continue
        family = name.get("family")
        given = name.get("given")
        first = given[0] if isinstance(given, list) and given else None
        if isinstance(family, str) and isinstance(first, str) and family and first:
            out.append((family, first))
    return out


def blocks(patient: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """The search queries whose union holds every Patient worth scoring (pure)."""
    queries = [
        [("identifier", f"{_escape(system)}|{_escape(value)}")]
        for system, value in sorted(identifiers(patient))
    ]
    born = patient.get("birthDate")
    if isinstance(born, str) and len(born) == 10:
        queries.append([("birthdate", born)])
    for family, given in _names(patient):
        queries.append([("family", _escape(family)), ("given", _escape(given))])
        queries.append([("family", _escape(given)), ("given", _escape(family))])
    queries += [[("match-telecom", _escape(key))] for key in sorted(telecom_keys(patient))]
    return queries


async def candidates(
    searcher: PatientSearch, patient: dict[str, Any], limits: ReadLimits | None
) -> list[Candidate]:
    """The stored Patients that match at least possibly (or certainly not), best first."""
    found: dict[str, dict[str, Any]] = {}
    for query in blocks(patient):
        params = [*query, ("_count", str(BLOCK_SIZE))]
        bundle = await searcher.search_bundle("Patient", params, strict=True, limits=limits)
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") or {}
            found.setdefault(str(resource.get("id")), resource)
    scored = [Candidate(r, assess(patient, r)) for r in found.values()]
    graded = [c for c in scored if c.assessment.grade is not None]
    return sorted(graded, key=lambda c: (-c.assessment.score, str(c.resource.get("id"))))


def certain(found: list[Candidate]) -> list[Candidate]:
    """The certain matches among the candidates."""
    return [c for c in found if c.assessment.grade == "certain"]
