"""One VAPID key for every container: FHIR_PUSH_VAPID_KEY_FILE wins over a generated key."""

from __future__ import annotations

from pathlib import Path

from py_vapid import Vapid02

from fhir_server.cli_support import production_warnings
from fhir_server.notifications.channels.push import application_server_key
from fhir_server.settings import Settings


def test_api_and_worker_with_the_same_key_file_publish_one_key(tmp_path: Path) -> None:
    key = Vapid02()
    key.generate_keys()
    shared = tmp_path / "vapid-private.pem"
    key.save_key(str(shared))
    api = Settings(push_vapid_key_file=shared, data_dir=tmp_path / "api")
    worker = Settings(push_vapid_key_file=shared, data_dir=tmp_path / "worker")
    assert application_server_key(api) == application_server_key(worker)
    assert not (tmp_path / "api").exists() and not (tmp_path / "worker").exists()
    # without the setting each data dir would get a key of its own
    alone = Settings(data_dir=tmp_path / "alone")
    assert application_server_key(alone) != application_server_key(api)


def test_production_without_mail_transport_is_warned_about() -> None:
    secret = "s" * 48
    quiet = Settings(environment="production", secret_key=secret, smtp_host="smtp.example.org")
    assert not any("FHIR_SMTP_HOST" in line for line in production_warnings(quiet))
    loud = Settings(environment="production", secret_key=secret)
    assert any("FHIR_SMTP_HOST is not set" in line for line in production_warnings(loud))
    assert production_warnings(Settings()) == []
