"""SMART Backend Services: client_credentials with private_key_jwt (RS384 and ES384)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwk, jwt

from fhir_server.settings import Settings
from tests.integration.auth_helpers import AUTH, BASE, add_client, auth_app, bearer

TOKEN_URL = f"{AUTH}/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def client(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    yield from auth_app(settings_factory)


def new_key(alg: str) -> jwk.Key:
    kid = uuid.uuid4().hex
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "RS384":
        return jwk.RSAKey.generate_key(2048, parameters=params)
    return jwk.ECKey.generate_key("P-384", parameters=params)


@pytest.fixture(scope="module", params=["RS384", "ES384"])
def backend(request: pytest.FixtureRequest, client: TestClient) -> tuple[str, jwk.Key]:
    key = new_key(request.param)
    client_id = f"ehr-{request.param.lower()}"
    add_client(
        client,
        client_id,
        "backend",
        "system/*.rs system/Slot.cruds",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    return client_id, key


def assertion(client_id: str, key: jwk.Key, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides.pop("claims", {}))
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"} | overrides.pop("header", {})
    return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def request_token(client: TestClient, signed: str, scope: str = "system/*.rs", **extra: str) -> Any:
    data = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    } | extra
    return client.post(TOKEN_URL, data=data)


def test_backend_token_reads_the_api(client: TestClient, backend: tuple[str, jwk.Key]) -> None:
    client_id, key = backend
    response = request_token(client, assertion(client_id, key), scope="system/*.rs user/*.rs")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int)
    assert body["scope"] == "system/*.rs"  # user/ scopes are not for backend clients
    assert "refresh_token" not in body
    assert response.headers["cache-control"] == "no-store"
    assert client.get(f"{BASE}/Slot", headers=bearer(body["access_token"])).status_code == 200
    created = client.post(
        f"{BASE}/Schedule",
        content=b'{"resourceType":"Schedule","actor":[{"reference":"Practitioner/x"}]}',
        headers=bearer(body["access_token"]) | {"Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 403  # system/*.rs gives no create


def test_reused_jti_is_refused(client: TestClient, backend: tuple[str, jwk.Key]) -> None:
    client_id, key = backend
    signed = assertion(client_id, key)
    assert request_token(client, signed).status_code == 200
    again = request_token(client, signed)
    assert again.status_code in (400, 401) and again.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "change",
    [
        {"claims": {"aud": f"{BASE}"}},
        {"claims": {"exp": int(time.time()) - 120}},
        {"claims": {"exp": int(time.time()) + 3600}},  # more than 5 minutes ahead
        {"claims": {"iss": "someone-else"}},
    ],
)
def test_bad_assertion_claims_are_refused(
    client: TestClient, backend: tuple[str, jwk.Key], change: dict[str, Any]
) -> None:
    client_id, key = backend
    response = request_token(client, assertion(client_id, key, **change))
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_assertion_signed_by_another_key_is_refused(
    client: TestClient, backend: tuple[str, jwk.Key]
) -> None:
    client_id, key = backend
    stranger = new_key(key.alg or "RS384")
    stranger_with_kid = jwk.import_key(stranger.as_dict(private=True) | {"kid": key.kid})
    response = request_token(client, assertion(client_id, stranger_with_kid))
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_unsigned_and_symmetric_assertions_are_refused(
    client: TestClient, backend: tuple[str, jwk.Key]
) -> None:
    client_id, _ = backend
    import base64

    import orjson

    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 60,
        "jti": uuid.uuid4().hex,
    }
    unsigned = f"{b64({'alg': 'none'})}.{b64(claims)}."
    assert request_token(client, unsigned).json()["error"] == "invalid_client"
    secret = jwk.OctKey.generate_key(256)
    hs = jwt.encode({"alg": "HS256"}, claims, secret)
    assert request_token(client, hs).json()["error"] == "invalid_client"


def test_client_id_must_match_the_assertion(
    client: TestClient, backend: tuple[str, jwk.Key]
) -> None:
    client_id, key = backend
    response = request_token(client, assertion(client_id, key), client_id="other")
    assert response.json()["error"] == "invalid_client"


def test_backend_client_cannot_use_the_authorize_endpoint(
    client: TestClient, backend: tuple[str, jwk.Key]
) -> None:
    client_id, _ = backend
    response = client.get(
        f"{AUTH}/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": "http://x/cb",
            "scope": "system/*.rs",
            "aud": BASE,
        },
        follow_redirects=False,
    )
    assert response.status_code == 400 and "location" not in response.headers


def test_jwks_by_url_is_fetched(
    client: TestClient, settings_factory: Callable[..., Settings]
) -> None:
    """A client registered with a JWKS URL: the key is fetched from that URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import orjson

    key = new_key("ES384")
    document = orjson.dumps({"keys": [key.as_dict(private=False)]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks.json"
        add_client(client, "by-url", "backend", "system/*.rs", jwks_uri=url)
        ok = request_token(client, assertion("by-url", key, header={"jku": url}))
        assert ok.status_code == 200, ok.text
        wrong_jku = request_token(
            client, assertion("by-url", key, header={"jku": "http://evil.example/jwks"})
        )
        assert wrong_jku.json()["error"] == "invalid_client"
    finally:
        server.shutdown()
