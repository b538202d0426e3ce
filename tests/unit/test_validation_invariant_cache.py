"""The invariant-result cache of `fhir.validation` answers exactly what fhirpathpy answers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from fhir_server.fhir import validation
from fhir_server.fhir.definitions import ElementRule, resource_rule

# Values a child may carry, including the ones FHIR JSON forbids (the cache must not
# assume the other checks ran first).
_VALUES: list[Any] = [
    "noshow",
    "cancelled",
    "booked",
    "",
    None,
    [],
    [None],
    ["a"],
    {},
    {"text": "x"},
    True,
    0,
]


def _rules() -> list[tuple[str, ElementRule]]:
    appointment = resource_rule("Appointment")
    return [
        ("Appointment", appointment),
        ("participant", appointment.children["participant"]),
        ("Patient", resource_rule("Patient")),
    ]


def _nodes(resource_type: str, names: list[str]) -> list[dict[str, Any]]:
    base = {"resourceType": resource_type} if resource_type[0].isupper() else {}
    nodes = [dict(base)]
    for name, value in itertools.product(names, _VALUES):
        nodes.append({**base, name: value})
        nodes.append({**base, "_" + name: {"extension": [{"url": "u", "valueCode": "x"}]}})
        nodes.append({**base, name + "String": value})  # a choice-type spelling
    for first, second in itertools.combinations(names, 2):
        for a, b in itertools.product(_VALUES[:6], repeat=2):
            nodes.append({**base, first: a, second: b})
    return nodes


@pytest.mark.parametrize(("resource_type", "rule"), _rules())
def test_cached_results_equal_fhirpathpy(resource_type: str, rule: ElementRule) -> None:
    for constraint in rule.constraints:
        reads = validation._simple_reads(constraint.expression)
        assert reads is not None, constraint.expression  # these are the ones the cache serves
        names = [*sorted(reads[0] | reads[1]), "other"]
        validation._results.clear()
        for node in _nodes(resource_type, names) * 2:  # twice: the second pass hits the cache
            try:
                expected = constraint.check(node)
            except Exception:
                with pytest.raises(Exception):  # noqa: B017
                    validation._evaluate(constraint, node)
                continue
            assert validation._evaluate(constraint, node) == expected, (constraint.key, node)
        assert validation._results, constraint.key


@pytest.mark.parametrize(
    "expression",
    [
        "start.hasValue().not() or (start <= end)",
        "%resource.descendants().exists()",
        "children().count() > id.count()",
        "name.given.exists()",
        "name.where(use = 'official').exists()",
        "$this.status = 'x'",
        "exists()",
        "status.count() = 1",
    ],
)
def test_expressions_reading_more_than_direct_children_are_not_cached(expression: str) -> None:
    assert validation._simple_reads(expression) is None


def test_a_cached_invariant_still_rejects() -> None:
    resource = {"resourceType": "Appointment", "status": "booked", "participant": [{"actor": {}}]}
    for _ in range(2):
        with pytest.raises(validation.Unprocessable) as caught:
            validation.validate_resource({**resource, "start": "2030-01-07T09:00:00Z"})
        assert any("app-2" in issue.diagnostics for issue in caught.value.issues)
