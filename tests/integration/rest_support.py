"""Helpers shared by the REST integration tests: requests, outcomes and store snapshots.

`store_state` reads the real store (through the app's own connection) so a
test can assert that a failed request wrote nothing, to current rows or to
history.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from fhir_server.app import create_app
from fhir_server.fhir.resource_types import SERVED_TYPES
from fhir_server.rest.services import Services
from fhir_server.settings import Settings
from fhir_server.store.resources import HISTORY
from tests.conftest import FHIR_JSON, patient

JSON_HEADERS = {"content-type": FHIR_JSON}


@pytest.fixture(scope="module", params=[None, True], ids=["compensating", "transactions"])
def both_modes_client(
    request: pytest.FixtureRequest, settings_factory: Callable[..., Settings]
) -> Iterator[TestClient]:
    """An app run with compensating undo (the embedded store's default) or, forced on,
    through MongoDB transaction sessions (the embedded server accepts and aborts them).

    A module opts in with `client = both_modes_client`.
    """
    app = create_app(settings_factory(use_transactions=request.param))
    with TestClient(app) as test_client:
        yield test_client


def services(client: TestClient) -> Services:
    found: Services = client.app.state.services  # type: ignore[attr-defined]
    return found


async def _state(svc: Services) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name in (*SERVED_TYPES, HISTORY):
        cursor = svc.store.database.db[name].find({}).sort("_id", 1)
        out[name] = [doc async for doc in cursor]
    return out


def store_state(client: TestClient) -> dict[str, list[Any]]:
    """Every current row and every history row, for before/after comparisons."""
    assert client.portal is not None
    result: dict[str, list[Any]] = client.portal.call(_state, services(client))
    return result


def create(client: TestClient, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(
        f"/fhir/{(resource or patient())['resourceType']}",
        content=orjson.dumps(resource or patient()),
        headers=JSON_HEADERS,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def put(client: TestClient, resource: dict[str, Any], **headers: str) -> Response:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response: Response = client.put(
        url, content=orjson.dumps(resource), headers={**JSON_HEADERS, **headers}
    )
    return response


def assert_outcome(response: Response, status: int, *expressions: str) -> dict[str, Any]:
    """The response is `status` with an OperationOutcome naming each expression."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"] and all(i["severity"] in ("error", "fatal") for i in outcome["issue"])
    named = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    for expression in expressions:
        assert expression in named, (expression, outcome)
    return outcome


def appointment(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2030-01-07T09:00:00Z",
        "end": "2030-01-07T09:30:00Z",
        "participant": [{"actor": {"display": "Dr A"}, "status": "accepted"}],
        **extra,
    }


def binary_patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON Patch wrapped in a Binary, as a transaction PATCH entry carries it."""
    return {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(operations)).decode(),
    }
