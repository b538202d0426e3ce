"""What a new operator trips on at the command line: every command reports a bad setting,
a missing file or an unreachable store in one line; production refuses the demo; the
`serve --demo` token recipe works on whatever port the server runs."""

from __future__ import annotations

import re
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from joserfc import jwk
from typer.testing import CliRunner

from fhir_server.cli import app
from fhir_server.cli_support import STORE_UNREACHABLE
from fhir_server.settings import Settings
from tests.integration.auth_helpers import cli_env, stored_patient
from tests.integration.test_cli import CLI, PRACTITIONER, Serving, _env

runner = CliRunner()
COMMANDS = [
    ["users", "list"],
    ["clients", "list"],
    ["keys", "rotate"],
    ["slots", "generate"],
    ["outbox", "list"],
    ["worker"],
    ["beat"],
    ["serve"],
    ["demo"],
    ["reindex"],
]


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    text: str = result.stderr.strip()
    assert text.startswith("Error: ") and "\n" not in text, text
    return text


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_names_an_invalid_setting(command: list[str], tmp_path: Path) -> None:
    env = {"FHIR_DATA_DIR": str(tmp_path / "data"), "FHIR_ENVIRONMENT": "prod"}
    text = _one_line_error(runner.invoke(app, command, env=env))
    assert "FHIR_ENVIRONMENT" in text and "'development' or 'production'" in text
    port = _one_line_error(runner.invoke(app, command, env={"FHIR_PORT": "eighty"}))
    assert "FHIR_PORT" in port
    assert not (tmp_path / "data").exists()


def test_worker_refuses_a_queue_it_does_not_have(tmp_path: Path) -> None:
    env = {"FHIR_DATA_DIR": str(tmp_path / "data")}
    result = runner.invoke(app, ["worker", "--queues", "notifications,mail"], env=env)
    assert result.exit_code == 2, result.output  # a usage error, before any worker starts
    assert "--queues" in result.stderr and "notifications, exports" in result.stderr


def test_a_missing_or_bad_jwks_file_is_one_line(tmp_path: Path) -> None:
    base = ["clients", "add", "--client-id", "ehr", "--name", "EHR", "--type", "backend"]
    base += ["--scope", "system/*.rs", "--jwks-file"]
    missing = _one_line_error(runner.invoke(app, [*base, str(tmp_path / "nope.json")]))
    assert "--jwks-file" in missing and "No such file" in missing
    (tmp_path / "bad.json").write_text("{not json")
    assert "not JSON" in _one_line_error(runner.invoke(app, [*base, str(tmp_path / "bad.json")]))


@pytest.mark.parametrize("command", [["demo"], ["serve", "--demo"]], ids=" ".join)
def test_production_refuses_the_demo_before_writing(command: list[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        "FHIR_ENVIRONMENT": "production",
        "FHIR_SECRET_KEY": "a-long-random-production-secret-" + uuid.uuid4().hex,
        "FHIR_DATA_DIR": str(data),
    }
    text = _one_line_error(runner.invoke(app, command, env=env))
    assert "FHIR_ENVIRONMENT=production" in text and "nothing was written" in text
    assert not data.exists()  # no embedded store was even started


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_store_is_worded_the_same_by_every_command(tmp_path: Path) -> None:
    env = {
        "FHIR_MONGODB_URI": f"mongodb://127.0.0.1:{_closed_port()}/?directConnection=true",
        "FHIR_DATA_DIR": str(tmp_path),
    }
    audit = ["audit", "who-accessed", "Patient/x", "--since", "2026-01-01"]
    for command in (["users", "list"], ["slots", "generate"], audit, ["reindex"]):
        assert _one_line_error(runner.invoke(app, command, env=env)) == (
            f"Error: {STORE_UNREACHABLE}"
        )


@pytest.fixture
def env(settings_factory: Callable[..., Settings]) -> dict[str, str]:
    return cli_env(settings_factory)


def test_users_add_checks_the_fhir_user_exists(env: dict[str, str]) -> None:
    add = ["users", "add", "--username", "pat", "--role", "patient", "--password-stdin"]
    password = "orchard-lantern-velvet-93\n"
    missing = runner.invoke(app, [*add, "--fhir-user", "Patient/123"], env=env, input=password)
    assert "Patient/123 does not exist" in _one_line_error(missing)
    wrong = runner.invoke(app, [*add, "--fhir-user", "Slot/1"], env=env, input=password)
    assert "--fhir-user must be Type/id" in _one_line_error(wrong)
    assert orjson.loads(runner.invoke(app, ["users", "list"], env=env).stdout) == []

    rid = stored_patient(env)
    made = runner.invoke(app, [*add, "--fhir-user", f"Patient/{rid}"], env=env, input=password)
    assert made.exit_code == 0, made.output
    assert orjson.loads(made.stdout)["fhir_user"] == f"Patient/{rid}"


def test_backend_clients_need_keys_and_have_no_pkce(env: dict[str, str], tmp_path: Path) -> None:
    add = ["clients", "add", "--name", "EHR", "--type", "backend", "--scope", "system/*.rs"]
    empty = tmp_path / "empty.json"
    empty.write_bytes(orjson.dumps({"keys": []}))
    refused = runner.invoke(app, [*add, "--client-id", "e1", "--jwks-file", str(empty)], env=env)
    assert "no keys" in _one_line_error(refused)
    key = jwk.ECKey.generate_key("P-384", parameters={"alg": "ES384", "kid": "k1"})
    good = tmp_path / "jwks.json"
    good.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    made = runner.invoke(app, [*add, "--client-id", "e2", "--jwks-file", str(good)], env=env)
    assert made.exit_code == 0, made.output
    assert orjson.loads(made.stdout)["require_pkce"] is False


@pytest.mark.slow  # a fhir-server subprocess
def test_the_serve_demo_recipe_works_on_another_port(tmp_path: Path) -> None:
    """`serve --demo --port N` prints a token recipe; run as printed, its token is accepted."""
    env = _env(tmp_path / "data", "fhir", FHIR_AUTH_ENABLED="true", PYTHONUNBUFFERED="1")
    server = Serving(env, tmp_path / "serve.log", "--demo")
    try:
        printed = (tmp_path / "serve.log").read_text()
        recipe = re.search(r"Try: TOKEN=\$\((.*?) \|", printed)
        assert recipe, printed
        words = recipe.group(1).split()
        extra = dict(w.split("=", 1) for w in words if "=" in w and w.startswith("FHIR_"))
        command = [w for w in words if not w.startswith("FHIR_")]
        assert command[0].endswith("fhir-server"), command
        minted = subprocess.run(
            [CLI, *command[1:]],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert minted.returncode == 0, minted.stderr
        token = orjson.loads(minted.stdout)["access_token"]
        answer = server.http.get(
            f"/fhir/Practitioner/{PRACTITIONER}", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        assert f"FHIR_PUBLIC_BASE_URL=http://127.0.0.1:{server.port}/fhir" in printed
    finally:
        assert server.stop() == 0
