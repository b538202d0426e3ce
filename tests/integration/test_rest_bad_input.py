"""Bad input: each case gets the right status, an OperationOutcome pointing at the
element, and leaves the store (current rows and history) exactly as it was.

Status choice: a body that cannot be read as a resource of the URL's type at all
(invalid JSON, not an object, missing or wrong resourceType, id differing from the
URL) is 400. A body that parses as the right resource type but breaks the
definitions (unknown element, wrong datatype, cardinality, binding, invariant,
booking rule) is 422, so every such problem is reported together in one outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.conftest import FHIR_JSON, patient
from tests.integration.rest_support import appointment, assert_outcome, create, store_state

Case = tuple[str, str, Any, int, tuple[str, ...]]


def _without(resource: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in keys}


_DEEP = b"[" * 900 + b"]" * 900
_DEEP_TRANSACTION = (
    b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"request": '
    b'{"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient", '
    b'"extension": ' + _DEEP + b"}}]}"
)

CASES: dict[str, Case] = {
    "deeply nested transaction": ("POST", "/fhir", _DEEP_TRANSACTION, 400, ()),
    "deeply nested resource": (
        "POST",
        "/fhir/Patient",
        b'{"resourceType": "Patient", "extension": ' + _DEEP + b"}",
        400,
        (),
    ),
    "invalid json": ("POST", "/fhir/Patient", b'{"resourceType": "Patient",', 400, ()),
    "json array": ("POST", "/fhir/Patient", [patient()], 400, ()),
    "json string": ("POST", "/fhir/Patient", "Patient", 400, ()),
    "empty body": ("PUT", "/fhir/Patient/x1", b"", 400, ()),
    "missing resourceType": (
        "POST",
        "/fhir/Patient",
        _without(patient(), "resourceType"),
        400,
        ("resourceType",),
    ),
    "wrong resourceType": (
        "POST",
        "/fhir/Patient",
        {**patient(), "resourceType": "Practitioner"},
        400,
        ("resourceType",),
    ),
    "unknown element": (
        "POST",
        "/fhir/Patient",
        {**patient(), "nickname": "JJ"},
        422,
        ("Patient.nickname",),
    ),
    "nested unknown element": (
        "POST",
        "/fhir/Patient",
        patient(name=[{"family": "Doe", "nick": "J"}]),
        422,
        ("Patient.name[0].nick",),
    ),
    "wrong datatype": (
        "POST",
        "/fhir/Patient",
        patient(birthDate=19900402),
        422,
        ("Patient.birthDate",),
    ),
    "wrong datatype boolean": (
        "POST",
        "/fhir/Patient",
        patient(active="yes"),
        422,
        ("Patient.active",),
    ),
    "null value": (
        "POST",
        "/fhir/Patient",
        {**patient(), "active": None},
        422,
        ("Patient.active",),
    ),
    "empty array": ("POST", "/fhir/Patient", patient(telecom=[]), 422, ("Patient.telecom",)),
    "bad date": (
        "POST",
        "/fhir/Patient",
        patient(birthDate="1990-13-45"),
        422,
        ("Patient.birthDate",),
    ),
    "empty participant list": (
        "POST",
        "/fhir/Appointment",
        appointment(participant=[]),
        422,
        ("Appointment.participant",),
    ),
    "bogus status": (
        "POST",
        "/fhir/Appointment",
        appointment(status="bogus"),
        422,
        ("Appointment.status",),
    ),
    "bogus gender": (
        "POST",
        "/fhir/Patient",
        patient(gender="unknownish"),
        422,
        ("Patient.gender",),
    ),
    "bogus participant status": (
        "POST",
        "/fhir/Appointment",
        appointment(participant=[{"actor": {"display": "A"}, "status": "maybe"}]),
        422,
        ("Appointment.participant[0].status",),
    ),
    "end before start": (
        "POST",
        "/fhir/Appointment",
        appointment(start="2030-01-07T10:00:00Z", end="2030-01-07T09:00:00Z"),
        422,
        ("Appointment.end",),
    ),
    "booked without start and end": (
        "POST",
        "/fhir/Appointment",
        _without(appointment(), "start", "end"),
        422,
        ("Appointment.start", "Appointment.end"),
    ),
    "start without end": (
        "POST",
        "/fhir/Appointment",
        _without(appointment(status="proposed"), "end"),
        422,
        ("Appointment.end",),
    ),
    "slot end before start": (
        "POST",
        "/fhir/Slot",
        {
            "resourceType": "Slot",
            "schedule": {"reference": "Schedule/s"},
            "status": "free",
            "start": "2030-01-07T10:00:00Z",
            "end": "2030-01-07T10:00:00Z",
        },
        422,
        ("Slot.end",),
    ),
    "missing required element": (
        "POST",
        "/fhir/Slot",
        {
            "resourceType": "Slot",
            "status": "free",
            "start": "2030-01-07T10:00:00Z",
            "end": "2030-01-07T11:00:00Z",
        },
        422,
        ("Slot.schedule",),
    ),
    "id differs from url": ("PUT", "/fhir/Patient/abc", patient(id="xyz"), 400, ("Patient.id",)),
    "id missing on update": ("PUT", "/fhir/Patient/abc", patient(), 400, ("Patient.id",)),
    "malformed id in url": ("PUT", "/fhir/Patient/a_b", patient(id="a_b"), 400, ("Resource.id",)),
    "unknown type read": ("GET", "/fhir/Widget/1", None, 404, ()),
    "unknown type create": ("POST", "/fhir/Widget", {"resourceType": "Widget"}, 404, ()),
    "type-level patch": ("PATCH", "/fhir/Patient", [], 405, ()),
    "post to instance": ("POST", "/fhir/Patient/abc", patient(), 405, ()),
    "write to metadata": ("DELETE", "/fhir/metadata", None, 405, ()),
    "post to instance history": ("POST", "/fhir/Patient/abc/_history", patient(), 405, ()),
    "put to type history": ("PUT", "/fhir/Patient/_history", patient(), 405, ()),
    "get type _search": ("GET", "/fhir/Patient/_search", None, 405, ()),
    "unknown instance path": ("GET", "/fhir/Patient/abc/whatever", None, 404, ()),
    "too deep history path": ("GET", "/fhir/Patient/abc/_history/1/x", None, 404, ()),
    "unknown operation": ("POST", "/fhir/Patient/$no-such-op", {}, 404, ()),
    "write to CodeSystem": ("POST", "/fhir/CodeSystem", {"resourceType": "CodeSystem"}, 405, ()),
    "update ValueSet": (
        "PUT",
        "/fhir/ValueSet/administrative-gender",
        {"resourceType": "ValueSet", "id": "administrative-gender", "status": "draft"},
        405,
        (),
    ),
    "delete StructureDefinition": ("DELETE", "/fhir/StructureDefinition/x", None, 405, ()),
    "xml body": ("POST", "/fhir/Patient", b"<Patient/>", 415, ()),
}


def _send(client: TestClient, method: str, url: str, body: Any, content_type: str) -> Any:
    raw = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    return client.request(method, url, content=raw, headers={"content-type": content_type})


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(client: TestClient, name: str) -> None:
    method, url, body, status, expressions = CASES[name]
    content_type = "application/xml" if name == "xml body" else FHIR_JSON
    before = store_state(client)
    assert_outcome(_send(client, method, url, body, content_type), status, *expressions)
    assert store_state(client) == before


def test_bad_update_of_existing_writes_nothing(client: TestClient) -> None:
    created = create(client)
    before = store_state(client)
    url = f"/fhir/Patient/{created['id']}"
    for body in ({**created, "gender": "bogus"}, {**created, "id": "other"}, {**created, "x": 1}):
        response = _send(client, "PUT", url, body, FHIR_JSON)
        assert response.status_code in (400, 422)
    assert store_state(client) == before


def test_all_problems_reported_together(client: TestClient) -> None:
    body = appointment(status="bogus", participant=[])
    outcome = assert_outcome(
        _send(client, "POST", "/fhir/Appointment", body, FHIR_JSON),
        422,
        "Appointment.status",
        "Appointment.participant",
    )
    assert all(issue.get("diagnostics") for issue in outcome["issue"])


def test_outcome_never_echoes_submitted_values(client: TestClient) -> None:
    secret = "Zebediah-Secret-Value"
    body = patient(birthDate=secret, gender=secret, nickname=secret)
    response = _send(client, "POST", "/fhir/Patient", body, FHIR_JSON)
    assert response.status_code == 422
    assert secret not in response.text


@pytest.fixture(scope="module")
def small(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    """An app with tiny limits, so the size checks are cheap to reach."""
    app = create_app(settings_factory(max_body_bytes=2_000, max_bundle_entries=3))
    with TestClient(app) as test_client:
        yield test_client


def test_body_over_limit_is_413(small: TestClient) -> None:
    before = store_state(small)
    big = patient(name=[{"family": "x" * 3_000}])
    assert_outcome(_send(small, "POST", "/fhir/Patient", big, FHIR_JSON), 413)
    assert store_state(small) == before


def test_chunked_body_over_limit_is_413(small: TestClient) -> None:
    raw = orjson.dumps(patient(name=[{"family": "x" * 3_000}]))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 500):
            yield raw[start : start + 500]

    response = small.post("/fhir/Patient", content=chunks(), headers={"content-type": FHIR_JSON})
    assert_outcome(response, 413)


def test_default_limit_is_one_mebibyte(client: TestClient) -> None:
    before = store_state(client)
    big = patient(name=[{"family": "x" * 1_048_576}])
    assert_outcome(_send(client, "POST", "/fhir/Patient", big, FHIR_JSON), 413)
    assert store_state(client) == before


def test_bundle_over_entry_limit_is_413(small: TestClient) -> None:
    before = store_state(small)
    entries = [{"request": {"method": "GET", "url": "Patient/x"}}] * 4
    for kind in ("batch", "transaction"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
        assert_outcome(_send(small, "POST", "/fhir", bundle, FHIR_JSON), 413, "Bundle.entry")
    assert store_state(small) == before
