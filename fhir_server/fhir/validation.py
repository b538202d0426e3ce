"""Checking a resource before it is stored.

Two passes: the `fhir.resources` (R4B) models check structure and datatypes;
then the compiled R4 definitions check what the models let through (minimum
cardinality, required code bindings, invariants) plus the booking rules of
our own (a Slot or Appointment ends after it starts). All problems found are
reported together, each pointing at its element.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.fhir.definitions import ElementRule, datatype_rules, resource_rule
from fhir_server.fhir.errors import Issue, Unprocessable
from fhir_server.fhir.terminology import valueset_codes


def _loc_to_expression(resource_type: str, loc: tuple[int | str, ...]) -> str:
    expr = resource_type
    for part in loc:
        if isinstance(part, int):
            expr += f"[{part}]"
        elif not part.startswith(("function-", "__")):
            expr += f".{part}"
    return expr


def _model_issues(resource: dict[str, Any]) -> list[Issue]:
    resource_type = resource["resourceType"]
    try:
        get_fhir_model_class(resource_type).model_validate(resource)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            expression = _loc_to_expression(resource_type, tuple(err["loc"]))
            if err["type"] == "extra_forbidden":
                issues.append(Issue("structure", "Unknown element.", expression=(expression,)))
            else:
                issues.append(
                    Issue("value", f"Invalid value: {err['msg']}.", expression=(expression,))
                )
        return issues
    return []


def _present(node: dict[str, Any], key: str) -> Any:
    value = node.get(key)
    if value in (None, [], {}, ""):
        return None
    return value


def _choice_key(node: dict[str, Any], rule: ElementRule) -> str | None:
    base = rule.name[:-3]
    for t in rule.types:
        key = base + t[0].upper() + t[1:]
        if key in node:
            return key
    return None


def _code_issue(item: Any, rule: ElementRule, expression: str) -> Issue | None:
    assert rule.valueset is not None
    allowed = valueset_codes(rule.valueset)
    if allowed is None:
        return None
    if isinstance(item, str):
        if any(item in codes for codes in allowed.values()):
            return None
        return Issue(
            "code-invalid",
            f"Code is not in the required value set {rule.valueset}.",
            expression=(expression,),
        )
    codings = item.get("coding", [item]) if isinstance(item, dict) else []
    for coding in codings:
        if coding.get("code") in allowed.get(coding.get("system", ""), frozenset()):
            return None
    return Issue(
        "code-invalid",
        f"No coding from the required value set {rule.valueset}.",
        expression=(expression,),
    )


def _walk(node: dict[str, Any], rule: ElementRule, expression: str, issues: list[Issue]) -> None:
    for constraint in rule.constraints:
        try:
            result = constraint.check(node)
        except Exception:  # an expression fhirpathpy cannot evaluate is not the client's fault
            continue
        if result == [False]:
            issues.append(
                Issue(
                    "invariant", f"{constraint.key}: {constraint.human}", expression=(expression,)
                )
            )
    for name, child in rule.children.items():
        key = _choice_key(node, child) if name.endswith("[x]") else name
        value = _present(node, key) if key else None
        if value is None and key and _present(node, "_" + key) is not None:
            value = node["_" + key]
        items = value if isinstance(value, list) else ([] if value is None else [value])
        if len(items) < child.min:
            issues.append(
                Issue(
                    "required",
                    f"Element '{name}' is required (minimum {child.min}).",
                    expression=(f"{expression}.{name}",),
                )
            )
        for i, item in enumerate(items):
            item_expr = f"{expression}.{key}" + (f"[{i}]" if isinstance(value, list) else "")
            if child.valueset is not None:
                issue = _code_issue(item, child, item_expr)
                if issue:
                    issues.append(issue)
            if isinstance(item, dict):
                sub_rule = child if child.children else _datatype_rule(child, key or name)
                if sub_rule is not None:
                    _walk(item, sub_rule, item_expr, issues)


def _datatype_rule(rule: ElementRule, key: str) -> ElementRule | None:
    rules = datatype_rules()
    if rule.name.endswith("[x]"):
        suffix = key[len(rule.name) - 3 :]
        return rules.get(suffix)
    for t in rule.types:
        if t in rules:
            return rules[t]
    return None


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _period_issues(resource: dict[str, Any]) -> list[Issue]:
    """Booking invariant of ours: a Slot or Appointment ends after it starts."""
    if resource["resourceType"] not in ("Slot", "Appointment"):
        return []
    start, end = resource.get("start"), resource.get("end")
    if not (isinstance(start, str) and isinstance(end, str)):
        return []
    start_at, end_at = _instant(start), _instant(end)
    if start_at and end_at and end_at <= start_at:
        kind = resource["resourceType"]
        return [
            Issue(
                "invariant", f"{kind}.end must be after {kind}.start.", expression=(f"{kind}.end",)
            )
        ]
    return []


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise Unprocessable listing every problem; return quietly when the resource is valid."""
    issues = _model_issues(resource)
    if not issues:
        _walk(resource, resource_rule(resource["resourceType"]), resource["resourceType"], issues)
        issues += _period_issues(resource)
    if issues:
        raise Unprocessable("The resource is not valid.", issues=issues)
