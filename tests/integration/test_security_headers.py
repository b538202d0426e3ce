"""Answers carrying patient data are not cached or sniffed; production hides the schema."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.settings import Settings
from tests.conftest import FHIR_JSON, patient


def test_fhir_answers_are_not_stored_or_sniffed(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers={"content-type": FHIR_JSON})
    pid = created.json()["id"]
    for response in (
        created,
        client.get(f"/fhir/Patient/{pid}"),
        client.get("/fhir/Patient", params={"family": "Doe"}),
        client.get(f"/fhir/Patient/{pid}/_history"),
        client.get("/fhir/Patient/does-not-exist"),
    ):
        assert response.headers["cache-control"] == "no-store", response.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in response.headers  # plain http here
    metadata = client.get("/fhir/metadata")
    assert metadata.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in metadata.headers  # public, cacheable


def test_https_answers_carry_hsts(settings_factory: Callable[..., Settings]) -> None:
    with TestClient(create_app(settings_factory()), base_url="https://testserver") as secure:
        response = secure.get("/fhir/Patient")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"].startswith("max-age=")


def test_openapi_schema_is_off_in_production(settings_factory: Callable[..., Settings]) -> None:
    with TestClient(create_app(settings_factory())) as development:
        assert development.get("/openapi.json").status_code == 200
    production = settings_factory(environment="production", secret_key="s" * 40)
    with TestClient(create_app(production)) as served:
        assert served.get("/openapi.json").status_code == 404
        assert served.get("/docs").status_code == 404
