"""Which stored Patients to score for a given one, and their ranking (pure, no I/O).

Candidates come from the store's indexed search, a few small queries
("blocks") per Patient, never from reading every Patient: each identifier
(`identifier=system|value`), the birth date (`birthdate`), each name as
family and given and swapped (`family` + `given`, folded prefix match), and
each phone or e-mail (`match-telecom`, the custom parameter that indexes
phones by their last 9 digits and e-mails lower-cased). Each block returns at
most `BLOCK_SIZE` Patients. The REST edge runs them under the caller's read
limits (`rest.operations.match`), so scoring and the "only one certain match"
rule never see a Patient the caller could not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_server.matching.score import Assessment, assess, identifiers, telecom_keys

BLOCK_SIZE = 50
_ESCAPED = str.maketrans({"\\": "\\\\", ",": "\\,", "$": "\\$", "|": "\\|"})


@dataclass(frozen=True)
class Candidate:
    """A stored Patient and how well it matches."""

    resource: dict[str, Any]
    assessment: Assessment


def _escape(value: str) -> str:
    """A search value with FHIR's special characters escaped (so a comma is not an OR)."""
    return value.translate(_ESCAPED)


def _is_day(text: str) -> bool:
    """A full date (a conditional create's body is matched before it is validated)."""
    try:
        return len(text) == 10 and bool(date.fromisoformat(text))
    except ValueError:
        return False


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
    if isinstance(born, str) and _is_day(born):
        queries.append([("birthdate", born)])
    for family, given in _names(patient):
        queries.append([("family", _escape(family)), ("given", _escape(given))])
        queries.append([("family", _escape(given)), ("given", _escape(family))])
    queries += [[("match-telecom", _escape(key))] for key in sorted(telecom_keys(patient))]
    return queries


def ranked(patient: dict[str, Any], found: list[dict[str, Any]]) -> list[Candidate]:
    """The stored Patients found by the blocks that match at least possibly (or certainly
    not), best first; each once."""
    unique = {str(r.get("id")): r for r in found}
    scored = [Candidate(r, assess(patient, r)) for r in unique.values()]
    graded = [c for c in scored if c.assessment.grade is not None]
    return sorted(graded, key=lambda c: (-c.assessment.score, str(c.resource.get("id"))))


def certain(found: list[Candidate]) -> list[Candidate]:
    """The certain matches among the candidates."""
    return [c for c in found if c.assessment.grade == "certain"]
