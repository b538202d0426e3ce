"""What a caller cannot make the API spend: forged tokens cost no key reloads, and
per-token and per-address limits (counted in the shared Redis) answer 429."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.auth.keys import KeyRing
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from tests.integration.auth_helpers import BASE, auth_app, bearer, components, mint


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(kid: str) -> str:
    header = _b64(orjson.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}))
    claims = _b64(orjson.dumps({"iss": BASE, "aud": BASE, "sub": "x", "jti": "j", "exp": 2**40}))
    return f"{header}.{claims}.{_b64(b'not-a-signature')}"


def test_invalid_tokens_never_reload_the_key_ring_per_request(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = AuthStore.signing_keys

    async def counted(self: AuthStore) -> list[dict[str, object]]:
        reads.append(1)
        return await real(self)

    for client in auth_app(settings_factory):
        monkeypatch.setattr(AuthStore, "signing_keys", counted)  # counts; the real read runs
        ring: KeyRing = components(client).tokens.keyring
        known = next(iter(ring.public))
        valid = mint(client, "user/*.rs")
        forged = [_forged(known), _forged("unknown-kid"), "garbage", "a.b.c", valid[:-4] + "AAAA"]
        for _ in range(10):
            for token in forged:
                assert client.get(f"{BASE}/Patient", headers=bearer(token)).status_code == 401
        assert client.get(f"{BASE}/Patient", headers=bearer(valid)).status_code == 200
    assert len(reads) <= 1  # one look for the unknown key id, not one per request


def _fresh_window() -> None:
    """Start counting well inside one one-minute window (counts restart at its end)."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.1)


def test_token_and_address_limits_answer_429_with_retry_after(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        auth_enabled=True, rate_limit_token_per_minute=3, rate_limit_address_per_minute=5
    )
    with TestClient(create_app(settings)) as client:
        first, second = mint(client, "user/*.rs"), mint(client, "user/*.rs")
        _fresh_window()
        statuses = [
            client.get(f"{BASE}/Patient", headers=bearer(first)).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = client.get(f"{BASE}/Patient", headers=bearer(second))  # 5th from the address
        assert limited.status_code == 200
        limited = client.get(f"{BASE}/Patient", headers=bearer(second))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        outcome = limited.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "throttled"


def test_limits_are_shared_by_every_api_process(settings_factory: Callable[..., Settings]) -> None:
    """Two apps of one deployment (one database, one Redis) share their counts."""
    settings = settings_factory(rate_limit_address_per_minute=4)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        _fresh_window()
        assert [one.get(f"{BASE}/Patient").status_code for _ in range(2)] == [200, 200]
        assert [two.get(f"{BASE}/Patient").status_code for _ in range(3)] == [200, 200, 429]
        assert one.get(f"{BASE}/Patient").status_code == 429
