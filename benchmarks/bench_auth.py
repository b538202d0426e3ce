"""What SMART enforcement costs per request, measured in process (no asserts on time).

- the same GET Patient/[id] with auth off, and with a bearer token (signature
  check, a `find_one` for revocation, the policy decision);
- a patient-token search of Appointment (compartment parameter added);
- one argon2id password hash (what a login or registration pays);
- a full client_credentials token request with a private_key_jwt (RS384).

Run: `.venv/bin/python -m benchmarks.bench_auth` (embedded store in a temp dir).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from joserfc import jwk, jwt

from fhir_server.app import create_app
from fhir_server.auth.users import hash_secret
from fhir_server.settings import Settings
from fhir_server.store import embedded

ROUNDS = 300
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BASE = "http://testserver/fhir"


def timed(label: str, run: Callable[[], Any], rounds: int = ROUNDS) -> None:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{label:<52} median {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms")


def call(client: TestClient, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        return await fn(*args, **kwargs)

    assert client.portal is not None
    return client.portal.call(run)


def main() -> None:
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    data = Path(tempfile.mkdtemp())
    server = embedded.start(data)
    try:
        common: dict[str, Any] = {
            "mongodb_uri": server.uri,
            "public_base_url": BASE,
            "data_dir": data,
            "log_level": "WARNING",
            # The limits are counted (their cost is in the figures) but never reached.
            "rate_limit_address_per_minute": 10**9,
            "rate_limit_token_per_minute": 10**9,
        }
        off = Settings(**common, database=f"b{uuid.uuid4().hex[:8]}", auth_enabled=False)
        on = Settings(**common, database=f"b{uuid.uuid4().hex[:8]}", auth_enabled=True)
        patient = {"resourceType": "Patient", "name": [{"family": "Bench"}]}
        with TestClient(create_app(off)) as plain:
            pid = plain.post(f"{BASE}/Patient", json=patient).json()["id"]
            timed("GET Patient/[id], auth off", lambda: plain.get(f"{BASE}/Patient/{pid}"))
        with TestClient(create_app(on)) as secured:
            auth = secured.app.state.auth  # type: ignore[attr-defined]
            version = call(secured, secured.app.state.services.store.create, patient)  # type: ignore[attr-defined]
            pid = version.id
            grant = {"client_id": "bench", "sub": "b", "scope": "user/*.rs", "family": "f"}
            issued = auth.tokens.access_token(grant)
            call(
                secured,
                auth.store.save_access,
                {**grant, "_id": issued.jti, "expires_at": issued.expires_at},
            )
            headers = {"Authorization": f"Bearer {issued.token}"}
            timed(
                "GET Patient/[id], user token",
                lambda: secured.get(f"{BASE}/Patient/{pid}", headers=headers),
            )
            forged = {"Authorization": f"Bearer {issued.token[:-8]}AAAAAAAA"}
            timed(
                "GET Patient/[id], forged token (401)",
                lambda: secured.get(f"{BASE}/Patient/{pid}", headers=forged),
            )
            pgrant = {**grant, "scope": "patient/*.rs", "patient": pid}
            pissued = auth.tokens.access_token(pgrant)
            call(
                secured,
                auth.store.save_access,
                {**pgrant, "_id": pissued.jti, "expires_at": pissued.expires_at},
            )
            pheaders = {"Authorization": f"Bearer {pissued.token}"}
            timed(
                "GET Patient/[id], patient token (compartment check)",
                lambda: secured.get(f"{BASE}/Patient/{pid}", headers=pheaders),
            )
            timed(
                "GET Appointment (search), patient token",
                lambda: secured.get(f"{BASE}/Appointment", headers=pheaders),
            )

            key = jwk.RSAKey.generate_key(2048, parameters={"kid": "k", "alg": "RS384"})
            call(
                secured,
                auth.clients.add,
                "bench-backend",
                "Bench",
                "backend",
                "system/*.rs",
                jwks={"keys": [key.as_dict(private=False)]},
            )

            def backend_token() -> None:
                now = int(time.time())
                claims = {
                    "iss": "bench-backend",
                    "sub": "bench-backend",
                    "aud": "http://testserver/auth/token",
                    "exp": now + 120,
                    "jti": uuid.uuid4().hex,
                }
                assertion = jwt.encode(
                    {"alg": "RS384", "kid": "k"}, claims, key, algorithms=["RS384"]
                )
                response = secured.post(
                    "http://testserver/auth/token",
                    data={
                        "grant_type": "client_credentials",
                        "scope": "system/*.rs",
                        "client_assertion_type": ASSERTION_TYPE,
                        "client_assertion": assertion,
                    },
                )
                assert response.status_code == 200, response.text

            timed("POST /auth/token client_credentials (RS384 assertion)", backend_token, rounds=60)
            timed(
                "argon2id hash of one password",
                lambda: call(secured, hash_secret, "a-password-of-some-length", on),
                rounds=20,
            )
    finally:
        embedded.stop(server, data)


if __name__ == "__main__":
    main()
