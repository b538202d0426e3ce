"""Pure helpers of the REST core: body parsing, Prefer, ETags, media types, history keys."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest, NotAcceptable
from fhir_server.fhir.jsonio import MAX_DEPTH, loads_body
from fhir_server.rest.prefer import preference
from fhir_server.rest.shaping import FHIR_JSON, media_type
from fhir_server.rest.versioning import not_modified, parse_etag
from fhir_server.store.resources import Version, order_key


def test_loads_body_depth_limit() -> None:
    assert loads_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(BadRequest):
        loads_body(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    with pytest.raises(BadRequest):
        loads_body(b'{"a": ')


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("return=minimal", "minimal"),
        ('return="OperationOutcome"', "OperationOutcome"),
        ("handling=strict, return=representation", "representation"),
        ("respond-async; return=minimal", "minimal"),
        ("handling=lenient", None),
        (None, None),
    ],
)
def test_prefer_return(header: str | None, expected: str | None) -> None:
    assert preference(header, "return") == expected


@pytest.mark.parametrize(("value", "version"), [('W/"3"', 3), ('"12"', 12), (' W/"1" ', 1)])
def test_parse_etag(value: str, version: int) -> None:
    assert parse_etag(value) == version


@pytest.mark.parametrize("value", ["3", 'W/"x"', "W/3", ""])
def test_parse_etag_rejects(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_etag(value)


def test_not_modified() -> None:
    version = Version("Patient", "p", 2, "2030-01-07T09:00:00.500000Z", False, {})
    assert not_modified(version, 'W/"2"', None)
    assert not_modified(version, '"2"', None)
    assert not not_modified(version, 'W/"1"', None)
    assert not_modified(version, None, "Mon, 07 Jan 2030 09:00:00 GMT")
    assert not not_modified(version, None, "Mon, 07 Jan 2030 08:59:59 GMT")
    assert not not_modified(version, None, None)


def test_media_type_order_and_xml() -> None:
    assert media_type(None, "application/json, application/fhir+json") == "application/json"
    assert media_type(None, "application/fhir+json, application/json") == FHIR_JSON
    assert media_type(None, "application/xml, application/json") == "application/json"
    with pytest.raises(NotAcceptable):
        media_type(None, "application/fhir+xml")
    with pytest.raises(NotAcceptable):
        media_type("xml", "application/json")


def test_order_key_orders_like_instants_and_is_not_iso() -> None:
    earlier, later = "2030-01-07T09:00:00.499999Z", "2030-01-07T09:00:00.500000Z"
    assert order_key(earlier) < order_key(later)
    assert order_key(later).isdigit() and len(order_key(later)) == 20
