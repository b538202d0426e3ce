"""The `users`, `clients` and `keys` commands against a real store, then used by the server."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from fastapi.testclient import TestClient
from joserfc import jwk
from typer.testing import CliRunner

from fhir_server.app import create_app
from fhir_server.auth.demo_access import DEMO_REDIRECTS, ensure_demo_access
from fhir_server.auth.keys import unseal
from fhir_server.cli import app
from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    PASSWORD,
    authorize_params,
    bearer,
    call,
    cli_env,
    components,
    login_form,
    login_token,
    mint,
    pkce,
    stored_patient,
)

runner = CliRunner()


@pytest.fixture
def env(settings_factory: Callable[..., Settings]) -> dict[str, str]:
    return cli_env(settings_factory)


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    result = runner.invoke(app, list(args), env=env, input=stdin)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_users_and_clients_commands(
    env: dict[str, str], settings_factory: Callable[..., Settings]
) -> None:
    stored_patient(env, "p1")  # `users add --fhir-user` checks that it exists
    user = run(
        env,
        "users",
        "add",
        "--username",
        "Pat",
        "--role",
        "patient",
        "--fhir-user",
        "Patient/p1",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert user == {"username": "pat", "role": "patient", "fhir_user": "Patient/p1"}
    weak = runner.invoke(
        app,
        ["users", "add", "--username", "w", "--role", "admin", "--password-stdin"],
        env=env,
        input="password1234\n",
    )
    assert weak.exit_code == 1 and "too common" in weak.output
    short = runner.invoke(
        app,
        ["users", "add", "--username", "s", "--role", "admin", "--password-stdin"],
        env=env,
        input="short\n",
    )
    assert short.exit_code == 1 and "12 characters" in short.output
    client = run(
        env,
        "clients",
        "add",
        "--client-id",
        "cli-app",
        "--name",
        "CLI app",
        "--type",
        "public",
        "--redirect-uri",
        "http://app.example/callback",
        "--scope",
        "launch/patient patient/*.rs",
    )
    assert client["client_id"] == "cli-app" and client["type"] == "public"
    confidential = run(
        env,
        "clients",
        "add",
        "--client-id",
        "conf",
        "--name",
        "Conf",
        "--type",
        "confidential",
        "--redirect-uri",
        "http://app.example/callback",
        "--scope",
        "user/*.rs",
    )
    assert len(confidential["client_secret"]) > 30
    public_no_pkce = runner.invoke(
        app,
        [
            "clients",
            "add",
            "--client-id",
            "np",
            "--name",
            "NP",
            "--type",
            "public",
            "--no-pkce",
            "--redirect-uri",
            "http://app.example/cb",
            "--scope",
            "patient/*.rs",
        ],
        env=env,
    )
    assert public_no_pkce.exit_code == 1 and "PKCE" in public_no_pkce.output
    assert [u["username"] for u in run(env, "users", "list")] == ["pat"]
    assert {c["client_id"] for c in run(env, "clients", "list")} == {"cli-app", "conf"}

    settings = settings_factory(auth_enabled=True, database=env["FHIR_DATABASE"])
    with TestClient(create_app(settings)) as server:
        body = login_token(server, "cli-app", "pat", "launch/patient patient/*.rs")
        assert body["patient"] == "p1"
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert server.get("/fhir/Patient/p1", headers=bearer).status_code != 401

    assert run(env, "users", "disable", "pat") == {"username": "pat", "disabled": True}
    with TestClient(create_app(settings)) as server:
        # Disabling ends the account's sessions at once, not when its tokens expire.
        refused = server.get("/fhir/Patient/p1", headers=bearer)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["issue"][0]["diagnostics"]
    assert run(env, "clients", "remove", "conf")["removed"] is True
    gone = runner.invoke(app, ["clients", "remove", "conf"], env=env)
    assert gone.exit_code == 1


def test_backend_client_with_jwks_file(env: dict[str, str], tmp_path: Path) -> None:
    key = jwk.ECKey.generate_key("P-384", parameters={"alg": "ES384", "kid": "k1"})
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    client = run(
        env,
        "clients",
        "add",
        "--client-id",
        "ehr",
        "--name",
        "EHR",
        "--type",
        "backend",
        "--jwks-file",
        str(path),
        "--scope",
        "system/*.rs",
    )
    assert client["jwks"]["keys"][0]["kid"] == "k1"
    refused = runner.invoke(
        app,
        [
            "clients",
            "add",
            "--client-id",
            "bad",
            "--name",
            "B",
            "--type",
            "backend",
            "--scope",
            "user/*.rs",
            "--jwks-file",
            str(path),
        ],
        env=env,
    )
    assert refused.exit_code == 1 and "system/" in refused.output


def test_key_rotation_keeps_old_tokens_valid(
    env: dict[str, str], settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(auth_enabled=True, database=env["FHIR_DATABASE"])
    with TestClient(create_app(settings)) as server:
        old_token = mint(server, "user/*.rs")
        old_kid = server.get(f"{AUTH}/jwks").json()["keys"][0]["kid"]
    new_kid = run(env, "keys", "rotate")["signing_kid"]
    assert new_kid != old_kid
    with TestClient(create_app(settings)) as server:
        kids = {k["kid"] for k in server.get(f"{AUTH}/jwks").json()["keys"]}
        assert kids == {old_kid, new_kid}
        assert server.get(f"{BASE}/Patient", headers=bearer(old_token)).status_code == 200
        new_token = mint(server, "user/*.rs")
        header = orjson.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))
        assert header["kid"] == new_kid


def test_private_keys_are_sealed_with_the_secret_key(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(auth_enabled=True)
    with TestClient(create_app(settings)) as server:
        docs = call(server, components(server).store.signing_keys)
    assert len(docs) == 1
    stored = orjson.dumps(docs[0]["public"]) + docs[0]["sealed"].encode()
    private = unseal(settings.secret_key, docs[0]["sealed"])
    assert private["d"] and private["d"].encode() not in stored
    with pytest.raises(InvalidTag):
        unseal("another-secret-key-value", docs[0]["sealed"])


def test_demo_access_is_idempotent_and_usable(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(auth_enabled=True)
    with TestClient(create_app(settings)) as server:
        store = components(server).store
        first = call(server, ensure_demo_access, store, settings, "Patient/p9", "Practitioner/d9")
        again = call(server, ensure_demo_access, store, settings, "Patient/p9", "Practitioner/d9")
        assert first == again
        _, challenge = pkce()
        params = authorize_params(
            first.client_id,
            "launch/patient patient/*.rs",
            challenge,
            redirect_uri=DEMO_REDIRECTS[0],
        )
        page = login_form(server, params, first.patient_login, first.password)
        assert 'value="allow"' in page.text
    with pytest.raises(ValueError):
        call_production = settings.model_copy(update={"environment": "production"})
        asyncio.run(ensure_demo_access(store, call_production, "Patient/p9", "Practitioner/d9"))


def test_users_token_is_accepted_by_the_api_within_its_compartment(
    env: dict[str, str], settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(auth_enabled=True, database=env["FHIR_DATABASE"])
    with TestClient(create_app(settings)) as server:
        admin = bearer(mint(server, "system/*.cruds"))
        for rid in ("p-mine", "p-other"):
            made = server.put(
                f"{BASE}/Patient/{rid}", json={"resourceType": "Patient", "id": rid}, headers=admin
            )
            assert made.status_code == 201, made.text
    run(env, "users", "add", "--username", "pm", "--role", "patient", "--fhir-user",
        "Patient/p-mine", "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    token = run(env, "users", "token", "pm", "--scope", "patient/*.rs")["access_token"]
    with TestClient(create_app(settings)) as server:
        assert server.get(f"{BASE}/Patient/p-mine", headers=bearer(token)).status_code == 200
        assert server.get(f"{BASE}/Patient/p-other", headers=bearer(token)).status_code == 404
        write = server.put(
            f"{BASE}/Patient/p-mine",
            json={"resourceType": "Patient", "id": "p-mine", "active": True},
            headers=bearer(token),
        )
        assert write.status_code == 403  # the token was minted read/search only


def test_users_add_takes_the_four_role_words(env: dict[str, str]) -> None:
    desk = run(
        env,
        "users",
        "add",
        "--username",
        "desk",
        "--role",
        "frontdesk",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert desk == {"username": "desk", "role": "frontdesk", "fhir_user": None}
    staff = runner.invoke(
        app,
        ["users", "add", "--username", "old", "--role", "staff", "--password-stdin"],
        env=env,
        input=PASSWORD + "\n",
    )
    assert staff.exit_code == 1 and "patient, practitioner, frontdesk, admin" in staff.output


def test_operator_changes_are_audited_and_searchable_like_the_admin_consoles(
    env: dict[str, str], settings_factory: Callable[..., Settings]
) -> None:
    """Each change the CLI makes to accounts, apps and keys, and each token it mints, is an
    AuditEvent found by `AuditEvent?subtype=` (indexed as the server indexes its own)."""
    run(env, "users", "add", "--username", "Op", "--role", "admin", "--password-stdin",
        stdin=PASSWORD + "\n")  # fmt: skip
    run(env, "users", "totp", "op")
    run(env, "users", "token", "op")
    run(env, "users", "disable", "op")
    run(env, "clients", "add", "--client-id", "cli-app", "--name", "App", "--type", "public",
        "--scope", "patient/*.rs", "--redirect-uri", "https://app.example/cb")  # fmt: skip
    run(env, "clients", "remove", "cli-app")
    kid = run(env, "keys", "rotate")["signing_kid"]
    settings = settings_factory(auth_enabled=True, database=env["FHIR_DATABASE"])
    with TestClient(create_app(settings)) as server:
        admin = bearer(mint(server, "user/*.rs", role="admin"))

        def found(subtype: str) -> list[tuple[str | None, str | None, str | None]]:
            answer = server.get(f"{BASE}/AuditEvent?subtype={subtype}", headers=admin)
            assert answer.status_code == 200, answer.text
            events = [e["resource"] for e in answer.json().get("entry", [])]
            return [
                (
                    e["agent"][0].get("altId"),
                    (e.get("entity") or [{}])[0].get("what", {}).get("identifier", {}).get("value"),
                    e.get("outcomeDesc"),
                )
                for e in events
            ]

        assert found("user-added") == [("cli", "op", "role admin")]
        assert [(t, d) for _, t, d in found("user-changed")] == [("op", "disabled")]
        assert [t for _, t, _ in found("second-factor-on")] == ["op"]
        assert [t for _, t, _ in found("app-registered")] == ["cli-app"]
        assert [t for _, t, _ in found("app-removed")] == ["cli-app"]
        assert [t for _, t, _ in found("signing-key-rotated")] == [kid]
        assert len(found("token-issued")) == 1  # the minted token, found by its index
