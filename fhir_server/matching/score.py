"""How alike two Patients are: a score in 0..1 and a match grade (pure, no I/O).

The scorer behind `Patient/$match` and the duplicate check of conditional
creates. Each demographic gives a similarity in 0..1 and a fixed weight
(`WEIGHTS`, summing to 1); the weighted sum is the demographic score. The
denominator is fixed, not the fields the query happens to carry, so a query
with only a name can never look like a probable match.

Grades (`http://terminology.hl7.org/CodeSystem/match-grade`):

- `certain`: an identifier (system and value) in common, not contradicted by
  the birth date (no day within a typo) or the name (no part alike); or,
  without one, a demographic score of at least `CERTAIN` with the same name,
  the same birth date and a telecom in common. Score 0.9 + 0.1 x demographic score.
- `certainly-not`: both carry an identifier of the same system, none in
  common, so the records are known to be two people; listed (score 0) only
  when the demographics alone would make them a possible match.
- `probable` from `PROBABLE`, `possible` from `POSSIBLE`; below that the
  candidate is not a match. An identifier match that the demographics
  contradict is probable. Scores below certain are capped at 0.89, so
  ordering by score puts every certain match first.

Names, addresses and e-mails are compared accent- and case-folded (the
search index's `fold`, plus the letters like Ł and Ø that Unicode does not
decompose); a family or given name within `_typos` edits
(Damerau-Levenshtein: a transposition is one edit) counts 0.8; given and
family swapped count 0.9. Phones are compared on their last 9 digits (as the
`match-telecom` search parameter indexes them), birth dates exactly, or 0.5
for one typed digit or day and month swapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir.search_values import fold

WEIGHTS = {"name": 0.35, "birthDate": 0.30, "telecom": 0.20, "address": 0.10, "gender": 0.05}
CERTAIN = 0.90
PROBABLE = 0.70
POSSIBLE = 0.50
_BELOW_CERTAIN = 0.89
_CONTRADICTED_IDENTIFIER = 0.75
_TYPO = 0.8
_SWAPPED = 0.9
PHONE_DIGITS = 9
_NOT_LETTERS = re.compile(r"[^\w]+")
# Letters Unicode does not decompose into a base letter and a mark (so `fold` keeps them).
_UNDECOMPOSED = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "\u0131": "i", "æ": "ae", "œ": "oe"})
_NOT_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class Assessment:
    """A candidate's score (0..1) and match grade, or grade None when it is no match."""

    score: float
    grade: str | None


def words(text: str) -> str:
    """Folded text (Ł, Ø... too) with punctuation and repeated spaces made one space."""
    return " ".join(_NOT_LETTERS.sub(" ", fold(text).translate(_UNDECOMPOSED)).split())


def phone_key(value: str) -> str:
    """The last 9 digits of a phone number (the `match-telecom` index's form)."""
    return _NOT_DIGITS.sub("", value)[-PHONE_DIGITS:]


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): transpositions cost 1."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            best = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, rows[-2][j - 2] + 1)
            row.append(best)
        rows.append(row)
    return rows[-1][-1]


def _typos(length: int) -> int:
    """Edits a name of this length may carry and still be taken for the same name."""
    return 0 if length < 4 else 1 if length < 8 else 2


def _text(value: Any) -> str:
    """A JSON string value, or "" for anything else (bodies of creates are scored
    before they are validated)."""
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _word_similarity(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    return _TYPO if edit_distance(a, b) <= _typos(min(len(a), len(b))) else 0.0


def _name_parts(name: Any) -> tuple[str, str]:
    """(family, first given) of a HumanName, folded; `text` split when they are absent."""
    if not isinstance(name, dict):
        return "", ""
    family = words(_text(name.get("family")))
    given_list = name.get("given")
    given = words(_text(given_list[0])) if isinstance(given_list, list) and given_list else ""
    if not (family or given) and _text(name.get("text")):
        parts = words(_text(name.get("text"))).split(" ")
        family, given = parts[-1], " ".join(parts[:-1])
    return family, given


def name_similarity(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Best similarity over both Patients' names, either way round."""
    best = 0.0
    for one in map(_name_parts, _list(a.get("name"))):
        for other in map(_name_parts, _list(b.get("name"))):
            straight = (_word_similarity(one[0], other[0]) + _word_similarity(one[1], other[1])) / 2
            swapped = (_word_similarity(one[0], other[1]) + _word_similarity(one[1], other[0])) / 2
            best = max(best, straight, swapped * _SWAPPED)
    return best


def birth_date_similarity(a: str, b: str) -> float:
    """1 the same day; 0.5 one digit apart or day and month swapped; else 0."""
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    if len(a) == len(b) == 10:
        if sum(x != y for x, y in zip(a, b, strict=True)) == 1:
            return 0.5
        if a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7]:
            return 0.5
    return 0.0


def telecom_keys(patient: dict[str, Any]) -> set[str]:
    """Phones as their last 9 digits and e-mails folded: what two records may share."""
    keys = set()
    for point in _list(patient.get("telecom")):
        value = _text(point.get("value")) if isinstance(point, dict) else ""
        if not value:
            continue
        if point.get("system") == "phone" and phone_key(value):
            keys.add(phone_key(value))
        elif point.get("system") == "email":
            keys.add(value.strip().lower())
    return keys


def _address_parts(address: Any) -> tuple[str, str]:
    if not isinstance(address, dict):
        return "", ""
    postal = words(_text(address.get("postalCode"))).replace(" ", "")
    return postal, words(" ".join(_text(line) for line in _list(address.get("line"))))


def address_similarity(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Half for the same postal code, half for the same street lines."""
    best = 0.0
    for one in map(_address_parts, _list(a.get("address"))):
        for other in map(_address_parts, _list(b.get("address"))):
            same = [x == y and bool(x) for x, y in zip(one, other, strict=True)]
            best = max(best, sum(same) / 2)
    return best


def identifiers(patient: dict[str, Any]) -> set[tuple[str, str]]:
    """(system, value) of every identifier that has both."""
    out = set()
    for identifier in _list(patient.get("identifier")):
        if isinstance(identifier, dict):
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str) and system and value:
                out.add((system, value))
    return out


def assess(query: dict[str, Any], candidate: dict[str, Any]) -> Assessment:
    """How well a stored Patient matches the one given to $match (see the module doc)."""
    name = name_similarity(query, candidate)
    born, their_birth = _text(query.get("birthDate")), _text(candidate.get("birthDate"))
    birth = birth_date_similarity(born, their_birth)
    gender = _text(query.get("gender"))
    similarities = {
        "name": name,
        "birthDate": birth,
        "telecom": 1.0 if telecom_keys(query) & telecom_keys(candidate) else 0.0,
        "address": address_similarity(query, candidate),
        "gender": 1.0 if gender and gender == candidate.get("gender") else 0.0,
    }
    score = round(sum(WEIGHTS[k] * v for k, v in similarities.items()), 4)
    ours, theirs = identifiers(query), identifiers(candidate)
    if ours & theirs:
        both_dated = bool(born and their_birth)
        both_named = bool(_list(query.get("name")) and _list(candidate.get("name")))
        if (both_dated and birth == 0) or (both_named and name == 0):
            return Assessment(_CONTRADICTED_IDENTIFIER, "probable")
        return Assessment(round(0.9 + 0.1 * score, 4), "certain")
    if {s for s, _ in ours} & {s for s, _ in theirs}:
        return Assessment(0.0, "certainly-not" if score >= POSSIBLE else None)
    same_person = name == 1 and birth == 1 and similarities["telecom"] == 1
    if score >= CERTAIN and same_person:
        return Assessment(round(0.9 + 0.1 * score, 4), "certain")
    capped = min(score, _BELOW_CERTAIN)
    if score >= PROBABLE:
        return Assessment(capped, "probable")
    if score >= POSSIBLE:
        return Assessment(capped, "possible")
    return Assessment(score, None)
