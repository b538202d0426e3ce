"""While the store cannot be reached, every request answers 503 with Retry-After, never 500.

The app runs on its own embedded store, which the test stops under it (the
driver then raises ServerSelectionTimeoutError / AutoReconnect).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from fhir_server.store import embedded
from tests.conftest import FHIR_JSON, patient
from tests.integration.auth_helpers import bearer, mint


def _assert_outcome_503(response: object) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert response.headers["retry-after"] == "5"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "transient"
    assert "Traceback" not in response.text and "pymongo" not in response.text  # type: ignore[attr-defined]


def test_requests_answer_503_with_retry_after_while_the_store_is_down(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    server = embedded.start(tmp_path)
    stopped = False
    try:
        settings = settings_factory(mongodb_uri=server.uri, auth_enabled=True)
        with TestClient(create_app(settings)) as client:
            ready = client.get("/readyz")
            assert ready.json()["store"] == "ok"
            headers = bearer(mint(client, "user/*.cruds"))
            embedded.stop(server, tmp_path)
            stopped = True

            _assert_outcome_503(client.get("/fhir/Patient/anyone", headers=headers))
            _assert_outcome_503(
                client.post(
                    "/fhir/Patient",
                    json=patient(),
                    headers={**headers, "content-type": FHIR_JSON},
                )
            )
            token = client.post(
                "/auth/token",
                data={"grant_type": "client_credentials", "client_id": "nobody"},
            )
            assert token.status_code == 503, token.text
            assert token.headers["retry-after"] == "5"
            assert token.json()["error"] == "temporarily_unavailable"
            assert client.get("/readyz").status_code == 503
    finally:
        if not stopped:
            embedded.stop(server, tmp_path)
