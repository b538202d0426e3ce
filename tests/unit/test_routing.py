"""The route table (pure): one reading of a request for the dispatcher and the policy."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest, MethodNotAllowed, NotFound
from fhir_server.fhir.routing import Interaction, classify


def route(method: str, path: str) -> Interaction:
    return classify(method, [p for p in path.split("/") if p])


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "Appointment/a1/_history/3", Interaction("vread", "Appointment", "a1", "3")),
        (
            "PUT",
            "Appointment",
            Interaction("update", "Appointment", conditional=True, changes=True),
        ),
        ("DELETE", "Slot", Interaction("delete", "Slot", conditional=True, changes=True)),
        ("PUT", "Slot/s1", Interaction("update", "Slot", "s1", changes=True)),
        (
            "POST",
            "Appointment/$book",
            Interaction("operation-type", "Appointment", operation="book", changes=True),
        ),
        (
            "GET",
            "Subscription/x/$status",
            Interaction("operation-instance", "Subscription", "x", operation="status"),
        ),
        ("POST", "$export", Interaction("operation-system", operation="export", changes=True)),
        ("GET", "", Interaction("search-system")),
        ("GET", "ValueSet/abc", Interaction("conformance", "ValueSet", "abc")),
        ("POST", "CodeSystem/_search", Interaction("conformance", "CodeSystem")),
    ],
)
def test_routes_bind_every_part(method: str, path: str, expected: Interaction) -> None:
    assert route(method, path) == expected


def test_what_changes_state() -> None:
    assert route("GET", "Appointment/$find").changes is False
    assert route("POST", "Appointment/$find").changes is True  # an operation may change state
    assert route("POST", "Appointment/_search").changes is False
    assert route("PATCH", "Appointment/a1").changes is True


def test_levels() -> None:
    assert route("GET", "Appointment/a1").level == "instance"
    assert route("GET", "Appointment").level == "type"
    assert route("GET", "_history").level == "system"


@pytest.mark.parametrize(
    ("method", "path", "error", "text"),
    [
        (
            "GET",
            "Appointment/_search",
            MethodNotAllowed,
            "GET is not supported on Appointment/_search",
        ),
        ("POST", "Appointment/a1", MethodNotAllowed, "POST is not supported on Appointment/[id]"),
        ("PUT", "", MethodNotAllowed, "on the base URL"),
        ("POST", "_history", MethodNotAllowed, "on _history"),
        ("PUT", "ValueSet/x", MethodNotAllowed, "read-only"),
        ("POST", "metadata", MethodNotAllowed, "metadata"),
        ("GET", "Unknown/1", NotFound, "not served"),
        ("GET", "Appointment/a1/extra", NotFound, "No such endpoint"),
        ("GET", "Appointment/a1/_history/1/more", NotFound, "No such endpoint"),
        ("GET", "Appointment/bad id!", BadRequest, "resource id"),
    ],
)
def test_what_no_route_fits_is_an_invalid_interaction(
    method: str, path: str, error: type[Exception], text: str
) -> None:
    interaction = route(method, path)
    assert interaction.kind == "invalid"
    assert isinstance(interaction.error, error)
    assert text in str(interaction.error.outcome())
