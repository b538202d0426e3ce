"""docker-compose.yml wires the production stack the way the README describes.

No Docker engine runs in the test environment, so the file is checked as data:
services, commands, ports, healthchecks and the environment the api reads.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from fhir_server.notifications.celery_app import EXPORTS_QUEUE, NOTIFICATIONS_QUEUE, QUEUES
from fhir_server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("api", "worker", "exporter", "beat")


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


def test_the_stack_has_its_six_services(services: dict[str, Any]) -> None:
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
    assert services["beat"]["command"] == ["fhir-server", "beat"]


def test_one_worker_per_queue_and_every_queue_consumed(services: dict[str, Any]) -> None:
    """Notifications and bulk exports on separate workers: a confirmation never waits
    behind an export slice, and no task is left in a queue nobody reads."""
    queues = {}
    for name in ("worker", "exporter"):
        command = services[name]["command"]
        assert command[:2] == ["fhir-server", "worker"]
        queues[name] = command[command.index("--queues") + 1]
    assert queues == {"worker": NOTIFICATIONS_QUEUE, "exporter": EXPORTS_QUEUE}
    assert set(queues.values()) == set(QUEUES)


def test_only_the_api_publishes_a_port_and_it_checks_readyz(services: dict[str, Any]) -> None:
    assert services["api"]["ports"] == ["8000:8000"]
    assert all("ports" not in services[name] for name in ("mongo", "redis", *APP_SERVICES[1:]))
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
    # the wheel that tests/integration/test_wheel_install.py builds and runs as non-root
    assert "pip wheel --no-deps --wheel-dir /tmp/wheels ." in dockerfile
    assert "pip install /tmp/wheels/*.whl" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert 'CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile


def test_the_image_writes_only_to_its_own_data_volume() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER fhir$", dockerfile, re.MULTILINE)
    assert "FHIR_DATA_DIR=/data" in dockerfile and "VOLUME /data" in dockerfile
    assert "chown fhir:fhir /data" in dockerfile


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_a_data_volume_and_one_vapid_key(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert "fhir-data:/data" in service["volumes"]
    assert service["environment"]["FHIR_DATA_DIR"] == "/data"
    assert service["secrets"] == ["vapid_private_key"]
    assert service["environment"]["FHIR_PUSH_VAPID_KEY_FILE"] == "/run/secrets/vapid_private_key"


def test_the_vapid_secret_and_data_volume_are_declared() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "fhir-data" in compose["volumes"]
    secret = compose["secrets"]["vapid_private_key"]["file"]
    assert _resolved(secret) == "./secrets/vapid-private.pem"


MESSAGING = {
    "FHIR_SMTP_HOST": "smtp.example.org",
    "FHIR_SMTP_PORT": "2525",
    "FHIR_SMTP_USER": "mailer",
    "FHIR_SMTP_PASSWORD": "mail-password",
    "FHIR_SMTP_FROM": "clinic@example.org",
    "FHIR_SMS_BASE_URL": "https://sms.example.org",
    "FHIR_SMS_ACCOUNT_SID": "AC123",
    "FHIR_SMS_AUTH_TOKEN": "sms-token",
    "FHIR_SMS_FROM": "+15551234567",
    "FHIR_PUSH_CONTACT": "mailto:ops@example.org",
    "FHIR_NOTIFY_LINK_BASE": "https://clinic.example.org/portal",
}


@pytest.mark.parametrize("name", ["api", "worker"])
def test_mail_sms_and_push_settings_pass_through(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set in the operator's shell, each reaches the container; unset, each is unset."""
    env = services[name]["environment"]
    for given in (MESSAGING, {}):
        for key in [k for k in os.environ if k.startswith("FHIR_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, _resolved(value, FHIR_SECRET_KEY="k" * 48, **given))
        settings = Settings()
        for key, value in MESSAGING.items():
            field = key.removeprefix("FHIR_").lower()
            expected = value if given else Settings.model_fields[field].default
            assert str(getattr(settings, field)) == str(expected), key


def test_forwarded_headers_are_trusted_from_the_proxy_network_only(
    services: dict[str, Any],
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    subnet = compose["networks"]["proxy"]["ipam"]["config"][0]["subnet"]
    assert "proxy" in services["api"]["networks"]
    allowed = _resolved(services["api"]["environment"]["FHIR_FORWARDED_ALLOW_IPS"])
    assert allowed == subnet and ipaddress.ip_network(allowed).is_private
