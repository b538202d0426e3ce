"""docker-compose.yml wires the production stack the way the README describes.

No Docker engine runs in the test environment, so the file is checked as data:
services, commands, ports, healthchecks and the environment the api reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from fhir_server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("api", "worker", "beat")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found: dict[str, Any] = compose["services"]
    return found


def _resolved(value: str, **given: str) -> str:
    """Compose `${VAR:-default}` / `${VAR:?message}` substitution, enough for these tests."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in given:
            return given[name]
        if op == ":-":
            return rest
        raise KeyError(f"{name} must be set: {rest}")

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value)


def test_the_stack_has_its_five_services(services: dict[str, Any]) -> None:
    assert set(services) == {"mongo", "redis", *APP_SERVICES}


def test_mongo_is_an_initialised_single_node_replica_set(services: dict[str, Any]) -> None:
    mongo = services["mongo"]
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in probe and "_id: 'rs0'" in probe and "mongo:27017" in probe
    assert "isWritablePrimary" in probe
    assert any(v.endswith(":/data/db") for v in mongo["volumes"])


def test_redis_is_checked_with_ping(services: dict[str, Any]) -> None:
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_app_commands(services: dict[str, Any]) -> None:
    assert services["api"]["command"][:2] == ["fhir-server", "serve"]
    api = services["api"]["command"]
    assert api[api.index("--host") + 1] == "0.0.0.0"
    assert api[api.index("--port") + 1] == "8000"
    assert services["worker"]["command"] == ["fhir-server", "worker"]
    assert services["beat"]["command"] == ["fhir-server", "beat"]


def test_only_the_api_publishes_a_port_and_it_checks_readyz(services: dict[str, Any]) -> None:
    assert services["api"]["ports"] == ["8000:8000"]
    assert all("ports" not in services[name] for name in ("mongo", "redis", "worker", "beat"))
    probe = " ".join(services["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in probe


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_backends(services: dict[str, Any], name: str) -> None:
    assert services[name]["depends_on"] == {
        "mongo": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services[name]["build"] == "."


@pytest.mark.parametrize("name", APP_SERVICES)
def test_environment_points_at_the_stack(services: dict[str, Any], name: str) -> None:
    env = services[name]["environment"]
    assert env["FHIR_ENVIRONMENT"] == "production"
    mongo = urlsplit(env["FHIR_MONGODB_URI"])
    assert (mongo.scheme, mongo.hostname, mongo.port) == ("mongodb", "mongo", 27017)
    assert parse_qs(mongo.query)["replicaSet"] == ["rs0"]
    redis = urlsplit(env["FHIR_REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    assert "FHIR_PUBLIC_BASE_URL" in env


def test_the_secret_key_must_be_supplied(services: dict[str, Any]) -> None:
    env = services["api"]["environment"]
    with pytest.raises(KeyError, match="FHIR_SECRET_KEY"):
        _resolved(env["FHIR_SECRET_KEY"])


def test_the_api_environment_is_accepted_by_settings(services: dict[str, Any]) -> None:
    env = {
        key: _resolved(value, FHIR_SECRET_KEY="k" * 48)
        for key, value in services["api"]["environment"].items()
    }
    fields = {f"FHIR_{name.upper()}": name for name in Settings.model_fields}
    settings = Settings.model_validate({fields[k]: v for k, v in env.items() if k in fields})
    assert settings.environment == "production"
    assert settings.base_url == "http://localhost:8000/fhir"
    assert settings.mongodb_uri == "mongodb://mongo:27017/?replicaSet=rs0"


def test_the_dockerfile_installs_the_package_and_runs_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("fhir_server", "profiles", "terminology"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert "RUN pip install ." in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert 'CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
