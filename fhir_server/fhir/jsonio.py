"""JSON bytes in and out (orjson), with FHIR's error for bad syntax."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.fhir.errors import BadRequest


def loads_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object (a FHIR resource).")
    return value


def dumps(value: Any, *, pretty: bool = False) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
