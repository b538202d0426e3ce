"""Health endpoints, JSON access logs with a request id and no content, and the bare 500."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.logs import JsonFormatter
from fhir_server.settings import Settings
from tests.conftest import patient
from tests.integration.rest_support import JSON_HEADERS, services

SECRET_FAMILY = "Quetzalcoatl-Unlikely"


@pytest.fixture()
def own_app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(settings_factory())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture()
def json_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Log lines as the server writes them (formatted while the request runs)."""
    caplog.handler.setFormatter(JsonFormatter())
    with caplog.at_level(logging.INFO, logger="fhir_server"):
        yield lambda: [orjson.loads(line) for line in caplog.text.splitlines() if line]


def test_healthz_and_readyz(own_app: TestClient) -> None:
    assert own_app.get("/healthz").json() == {"status": "ok"}
    ready = own_app.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "store": "ok", "broker": "ok"}


def test_readyz_is_503_when_store_is_gone(own_app: TestClient) -> None:
    assert own_app.portal is not None
    own_app.portal.call(services(own_app).store.database.client.close)
    response = own_app.get("/readyz")
    assert response.status_code == 503
    assert response.json()["store"] == "unreachable"
    assert own_app.get("/healthz").status_code == 200


def test_access_log_has_request_id_and_no_content(
    own_app: TestClient, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    body = orjson.dumps(patient(family=SECRET_FAMILY))
    response = own_app.post(
        f"/fhir/Patient?name={SECRET_FAMILY}",
        content=body,
        headers={**JSON_HEADERS, "x-request-id": "req-abc-123"},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "req-abc-123"
    generated = own_app.get(f"/fhir/Patient/{response.json()['id']}")
    lines = json_logs()
    access = [line for line in lines if line["logger"] == "fhir_server.access"]
    assert [line["request_id"] for line in access][:1] == ["req-abc-123"]
    assert access[1]["request_id"] == generated.headers["x-request-id"]
    assert access[0]["method"] == "POST" and access[0]["status"] == 201
    assert access[0]["path"] == "/fhir/Patient"
    assert all(SECRET_FAMILY not in orjson.dumps(line).decode() for line in lines)


def _corrupt_row(client: TestClient) -> None:
    """A current row missing its version: data the code cannot have written."""
    assert client.portal is not None
    collection = services(client).store.collection("Patient")
    row = {"_id": "corrupt", "resource": patient(family=SECRET_FAMILY), "deleted": False}
    client.portal.call(collection.insert_one, row)


def test_internal_error_says_only_that(
    own_app: TestClient, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    _corrupt_row(own_app)
    response = own_app.get("/fhir/Patient/corrupt", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["diagnostics"] for i in outcome["issue"]] == ["Internal Server Error"]
    assert "version" not in response.text and SECRET_FAMILY not in response.text
    assert response.headers["x-request-id"] == "req-500"
    errors = [line for line in json_logs() if line["level"] == "ERROR"]
    assert errors and errors[0]["request_id"] == "req-500"
    assert all(SECRET_FAMILY not in orjson.dumps(line).decode() for line in errors)
    assert all("'version'" not in line["message"] for line in errors)


def test_unknown_endpoint_outside_fhir_is_404_outcome(own_app: TestClient) -> None:
    response = own_app.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_readyz_is_503_when_the_broker_is_unreachable(
    settings_factory: Callable[..., Settings],
) -> None:
    # Nothing listens on port 9 (discard) here: the broker cannot be reached.
    settings = settings_factory(redis_url="redis://127.0.0.1:9/0")
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "store": "ok", "broker": "unreachable"}
