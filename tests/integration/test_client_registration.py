"""RFC 7591 Dynamic Client Registration, then a real OAuth client (authlib's) signs in.

The app registers with JSON at the endpoint that smart-configuration and the
CapabilityStatement both advertise, then does the authorization code + PKCE
round and a refresh as authlib does them: nothing in between is hand-made
except the person filling in the login and consent forms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from fastapi.testclient import TestClient
from joserfc import jwk

from fhir_server.settings import Settings
from tests.integration.auth_helpers import (
    AUTH,
    BASE,
    PASSWORD,
    REDIRECT,
    add_user,
    auth_app,
    bearer,
    call,
    components,
    log_in_and_consent,
    login_form,
    new_patient,
)

APP_REDIRECT = "https://app.example/callback"
SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs patient/Appointment.cruds"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


@pytest.fixture(scope="module")
def dana(client: TestClient) -> str:
    patient_id = new_patient(client, "Dana")
    add_user(client, "dana", "patient", f"Patient/{patient_id}")
    return patient_id


def _register(client: TestClient, **metadata: Any) -> Any:
    return client.post(f"{AUTH}/client-registration", json=metadata)


def _registered_count(client: TestClient) -> int:
    return len(call(client, components(client).clients.list))


def _oauth(client: TestClient, client_id: str, **kw: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=client_id,
        scope=SCOPE,
        redirect_uri=APP_REDIRECT,
        code_challenge_method="S256",
        transport=client._transport,
        **kw,
    )


def _sign_in(client: TestClient, oauth: OAuth2Client, username: str) -> dict[str, Any]:
    """authlib builds the authorization URL and redeems the code; a person signs in."""
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(f"{AUTH}/authorize", code_verifier=verifier, aud=BASE)
    params = dict(parse_qsl(urlsplit(url).query))
    location = log_in_and_consent(client, params, username)
    token: dict[str, Any] = oauth.fetch_token(
        f"{AUTH}/token", authorization_response=location, code_verifier=verifier
    )
    return token


def test_discovery_documents_agree_on_the_endpoint(client: TestClient) -> None:
    config = client.get(f"{BASE}/.well-known/smart-configuration").json()
    statement = client.get(f"{BASE}/metadata").json()
    oauth_uris = statement["rest"][0]["security"]["extension"][0]["extension"]
    uris = {e["url"]: e["valueUri"] for e in oauth_uris}
    assert config["registration_endpoint"] == uris["register"] == f"{AUTH}/client-registration"
    assert (
        client.get(f"{BASE}/.well-known/openid-configuration").json()["registration_endpoint"]
        == uris["register"]
    )


def test_a_public_app_registers_signs_in_and_refreshes(client: TestClient, dana: str) -> None:
    answer = _register(
        client,
        client_name="Dana's booking app",
        redirect_uris=[APP_REDIRECT],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        scope=SCOPE,
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    info = answer.json()
    assert "client_secret" not in info and info["token_endpoint_auth_method"] == "none"
    assert set(info["scope"].split()) == set(SCOPE.split())
    oauth = _oauth(client, info["client_id"], token_endpoint_auth_method="none")
    token = _sign_in(client, oauth, "dana")
    assert token["patient"] == dana and "patient/Appointment.cruds" in token["scope"].split()
    me = client.get(f"{BASE}/Patient/{dana}", headers=bearer(token["access_token"]))
    assert me.status_code == 200
    renewed = oauth.refresh_token(f"{AUTH}/token", refresh_token=token["refresh_token"])
    assert renewed["refresh_token"] != token["refresh_token"]
    elsewhere = dict(
        parse_qsl(urlsplit(oauth.create_authorization_url(f"{AUTH}/authorize", aud=BASE)[0]).query)
    )
    elsewhere["redirect_uri"] = "https://evil.example/cb"
    assert client.get(f"{AUTH}/authorize", params=elsewhere).status_code == 400


def test_the_consent_page_names_the_registered_app(client: TestClient, dana: str) -> None:
    info = _register(
        client, client_name="Dana's booking app", redirect_uris=[APP_REDIRECT],
        token_endpoint_auth_method="none",
    ).json()  # fmt: skip
    oauth = _oauth(client, info["client_id"], token_endpoint_auth_method="none")
    url, _ = oauth.create_authorization_url(
        f"{AUTH}/authorize", code_verifier=generate_token(48), aud=BASE
    )
    params = dict(parse_qsl(urlsplit(url).query))
    login = login_form(client, params, "dana", PASSWORD)
    assert "Dana&#39;s booking app" in login.text


def test_a_confidential_app_gets_a_secret_and_uses_it(client: TestClient, dana: str) -> None:
    answer = _register(
        client, redirect_uris=[APP_REDIRECT], token_endpoint_auth_method="client_secret_basic"
    )
    assert answer.status_code == 201, answer.text
    info = answer.json()
    assert info["client_secret"] and info["client_secret_expires_at"] == 0
    oauth = _oauth(
        client,
        info["client_id"],
        client_secret=info["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
    )
    token = _sign_in(client, oauth, "dana")
    assert token["patient"] == dana
    impostor = _oauth(
        client,
        info["client_id"],
        client_secret="not-the-secret",
        token_endpoint_auth_method="client_secret_basic",
    )
    with pytest.raises(Exception, match="invalid_client"):
        _sign_in(client, impostor, "dana")


def test_a_private_key_jwt_app_registers_its_keys(client: TestClient) -> None:
    key = jwk.ECKey.generate_key("P-384", parameters={"alg": "ES384", "kid": "app-1"})
    jwks = {"keys": [key.as_dict(private=False)]}
    answer = _register(
        client,
        redirect_uris=[APP_REDIRECT],
        token_endpoint_auth_method="private_key_jwt",
        jwks=jwks,
    )
    assert answer.status_code == 201, answer.text
    stored = call(client, components(client).clients.get, answer.json()["client_id"])
    assert stored.kind == "confidential" and stored.jwks == jwks and stored.secret_hash is None


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/cb#x"]}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"scope": "system/*.rs"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"jwks": {"keys": []}, "token_endpoint_auth_method": "private_key_jwt"},
         "invalid_client_metadata"),
        ({"jwks_uri": "https://app.example/jwks"}, "invalid_client_metadata"),
    ],
)  # fmt: skip
def test_bad_metadata_is_refused_and_registers_nothing(
    client: TestClient, metadata: dict[str, Any], error: str
) -> None:
    before = _registered_count(client)
    body = {"redirect_uris": ["https://app.example/cb"], **metadata}
    if metadata == {}:
        body = {}
    answer = _register(client, **body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    assert _registered_count(client) == before


def test_scope_is_limited_by_policy(client: TestClient) -> None:
    answer = _register(
        client, redirect_uris=[APP_REDIRECT], token_endpoint_auth_method="none",
        scope="patient/*.cruds system/*.rs openid",
    )  # fmt: skip
    assert answer.status_code == 201
    assert answer.json()["scope"].split() == ["patient/*.rs", "patient/Appointment.cruds", "openid"]


def test_switched_off_it_is_neither_served_nor_advertised(
    settings_factory: Callable[..., Settings],
) -> None:
    for closed in auth_app(settings_factory, client_registration=False):
        config = closed.get(f"{BASE}/.well-known/smart-configuration").json()
        assert "registration_endpoint" not in config
        statement = closed.get(f"{BASE}/metadata").json()
        uris = {e["url"] for e in statement["rest"][0]["security"]["extension"][0]["extension"]}
        assert "register" not in uris and "token" in uris
        refused = closed.post(f"{AUTH}/client-registration", json={"redirect_uris": [REDIRECT]})
        assert refused.status_code == 404
