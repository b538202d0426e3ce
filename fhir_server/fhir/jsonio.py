"""JSON bytes in and out (orjson), with FHIR's errors for bad syntax and absurd nesting."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.fhir.errors import BadRequest

# Deepest nesting accepted in a request body. Real resources stay far below
# (a transaction entry's resource with nested extensions is ~20 levels); the
# cap keeps recursive code (reference rewriting, validation) from running out
# of stack on a hostile body that orjson itself (limit 1024) would accept.
MAX_DEPTH = 100


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def loads_body(raw: bytes) -> Any:
    """Parse a request body: 400 for invalid JSON or nesting deeper than MAX_DEPTH."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if _depth(value) > MAX_DEPTH:
        raise BadRequest(f"The request body nests deeper than {MAX_DEPTH} levels.")
    return value


def dumps(value: Any, *, pretty: bool = False) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
