"""Accounts: lockout, TOTP, password reset by e-mail (real SMTP), registration, throttling, CORS."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from email import message_from_bytes
from typing import Any

import pyotp
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    PASSWORD,
    REDIRECT,
    add_client,
    add_user,
    audit_events,
    auth_app,
    authorize_params,
    call,
    components,
    log_in_and_consent,
    login_form,
    new_patient,
    pkce,
    post_form,
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def client(
    settings_factory: Callable[..., Settings], inbox: tuple[Inbox, int]
) -> Iterator[TestClient]:
    yield from auth_app(
        settings_factory,
        smtp_host="127.0.0.1",
        smtp_port=inbox[1],
        smtp_starttls=False,
        rate_limit_per_minute=40,
    )


@pytest.fixture(scope="module")
def setup(client: TestClient) -> None:
    add_client(client, "mobile", "public", "launch/patient patient/*.rs")


def login(client: TestClient, username: str, password: str, totp: str = "") -> Any:
    _, challenge = pkce()
    params = authorize_params("mobile", "launch/patient patient/*.rs", challenge)
    return login_form(client, params, username, password, totp=totp)


def consented(response: Any) -> bool:
    return 'value="allow"' in response.text


def test_lockout_after_five_failures(client: TestClient, setup: None) -> None:
    add_user(client, "locky", "patient", f"Patient/{new_patient(client, 'Lock')}")
    for _ in range(5):
        assert not consented(login(client, "locky", "wrong-password-123"))
    assert not consented(login(client, "locky", PASSWORD))  # locked even with the right one
    call(client, components(client).store.update_user, "locky", {"locked_until": 0})
    assert consented(login(client, "locky", PASSWORD))


def test_totp_second_factor(client: TestClient, setup: None) -> None:
    add_user(client, "otp", "patient", f"Patient/{new_patient(client, 'Otp')}")
    secret = call(client, components(client).accounts.enable_totp, "otp")
    assert not consented(login(client, "otp", PASSWORD))
    assert not consented(
        login(
            client, "otp", PASSWORD, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        )
    )
    assert consented(login(client, "otp", PASSWORD, pyotp.TOTP(secret).now()))


def test_login_is_audited(client: TestClient, setup: None) -> None:
    add_user(client, "audited", "patient", f"Patient/{new_patient(client, 'Aud')}")
    login(client, "audited", "wrong-password-123")
    login(client, "audited", PASSWORD)
    outcomes = sorted(
        e["outcome"]
        for e in audit_events(client)
        if any(a.get("who", {}).get("display") == "audited" for a in e["agent"])
    )
    assert outcomes == ["0", "4"]


def test_password_reset_by_email(client: TestClient, setup: None, inbox: tuple[Inbox, int]) -> None:
    add_user(
        client,
        "forgetful",
        "patient",
        f"Patient/{new_patient(client, 'Forget')}",
        email="forgetful@example.org",
    )
    before = len(inbox[0].messages)
    unknown = post_form(client, f"{AUTH}/password-reset", {"email": "nobody@example.org"})
    known = post_form(client, f"{AUTH}/password-reset", {"email": "forgetful@example.org"})
    assert unknown.status_code == known.status_code == 200
    assert unknown.text == known.text  # the same answer either way
    assert len(inbox[0].messages) == before + 1
    mail = inbox[0].messages[-1]
    assert mail["To"] == "forgetful@example.org"
    link = re.search(r"(http\S+token=\S+)", mail.get_payload(decode=True).decode())
    assert link
    token = link.group(1).split("token=")[1]
    confirm = f"{AUTH}/password-reset/confirm"
    weak = post_form(client, confirm, {"token": token, "password": "short"})
    assert weak.status_code == 400
    new_password = "a-fresh-and-long-passphrase"
    forged = client.post(confirm, data={"token": token, "password": new_password})
    assert forged.status_code == 403  # no CSRF token: the token is not used up
    done = post_form(client, confirm, {"token": token, "password": new_password})
    assert done.status_code == 200
    again = post_form(client, confirm, {"token": token, "password": "yet-another-passphrase"})
    assert again.status_code == 400  # single use
    assert consented(login(client, "forgetful", new_password))
    assert not consented(login(client, "forgetful", PASSWORD))


def test_patient_self_registration(client: TestClient, setup: None) -> None:
    form = {
        "given": "Reg",
        "family": "Istered",
        "birthDate": "1991-02-03",
        "email": "reg@example.org",
        "username": "reggie",
        "password": "qwertyuiop123",
    }
    common = post_form(client, f"{AUTH}/register", form)
    assert common.status_code == 400 and "too common" in common.text
    strong = form | {"password": "harbour-lights-2030x"}
    client.cookies.clear()
    forged = client.post(
        f"{AUTH}/register", data=strong, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403 and "did not come from this site" in forged.text
    assert call(client, components(client).accounts.get, "reggie") is None
    created = post_form(client, f"{AUTH}/register", strong)
    assert created.status_code == 200, created.text
    user = call(client, components(client).accounts.get, "reggie")
    assert user is not None and user.fhir_user.startswith("Patient/")
    _, challenge = pkce()
    params = authorize_params("mobile", "launch/patient patient/*.rs", challenge)
    location = log_in_and_consent(client, params, "reggie", password="harbour-lights-2030x")
    assert location.startswith(REDIRECT) and "code=" in location


def test_registration_can_be_switched_off(settings_factory: Callable[..., Settings]) -> None:
    for closed in auth_app(settings_factory, patient_self_registration=False):
        assert closed.get(f"{AUTH}/register").status_code == 404
        assert closed.post(f"{AUTH}/register", data={}).status_code == 404


def test_token_endpoint_is_rate_limited(settings_factory: Callable[..., Settings]) -> None:
    for limited in auth_app(settings_factory, rate_limit_per_minute=3):
        codes = [
            limited.post(f"{AUTH}/token", data={"grant_type": "client_credentials"}).status_code
            for _ in range(5)
        ]
        assert codes[:3] != [429] * 3 and codes[-1] == 429


def test_cors(client: TestClient, setup: None) -> None:
    anyone = client.get(
        f"{BASE}/.well-known/smart-configuration", headers={"Origin": "https://random.example"}
    )
    assert anyone.headers["access-control-allow-origin"] == "*"
    metadata = client.get(f"{BASE}/metadata", headers={"Origin": "https://random.example"})
    assert metadata.headers["access-control-allow-origin"] == "*"
    registered = client.options(
        f"{AUTH}/token",
        headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert registered.status_code == 204
    assert registered.headers["access-control-allow-origin"] == "http://app.example"
    api = client.get(f"{BASE}/Patient", headers={"Origin": "http://app.example"})
    assert api.headers["access-control-allow-origin"] == "http://app.example"
    stranger = client.get(f"{BASE}/Patient", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


def test_discovery_documents_agree(client: TestClient) -> None:
    smart = client.get(f"{BASE}/.well-known/smart-configuration").json()
    oidc = client.get(f"{BASE}/.well-known/openid-configuration").json()
    assert smart["issuer"] == oidc["issuer"] == BASE
    assert smart["jwks_uri"] == oidc["jwks_uri"] == f"{AUTH}/jwks"
    assert smart["code_challenge_methods_supported"] == ["S256"]
    assert smart["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {"launch-ehr", "permission-v2", "sso-openid-connect", "authorize-post"} <= set(
        smart["capabilities"]
    )
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    keys = client.get(smart["jwks_uri"]).json()["keys"]
    assert keys and all(k.get("kid") for k in keys) and all("d" not in k for k in keys)
