"""`private_key_jwt` client authentication (RFC 7523) as SMART Backend Services want it:
RS384/ES384 only, `jti` never reused, `exp` at most 5 minutes ahead, `jku` pinned.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    OAuth2Request,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwk, jwt
from joserfc.errors import JoseError

from fhir_server.auth.bridge import wait_for
from fhir_server.auth.clients import ASSERTION_METHOD, Client
from fhir_server.auth.token_server import TokenServer

ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME = 300


# -- client authentication with a signed JWT ------------------------------------------


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = ASSERTION_METHOD

    def __init__(self, server: TokenServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def __call__(self, query_client: Any, request: OAuth2Request) -> Client | None:
        assertion = request.form.get("client_assertion")
        if request.form.get("client_assertion_type") == self.CLIENT_ASSERTION_TYPE and assertion:
            headers, claims = self.extract_assertion(assertion)
            if headers.get("alg") not in ASSERTION_ALGORITHMS:
                raise InvalidClientError(description="The assertion must be signed RS384 or ES384.")
            form_id = request.form.get("client_id")
            if form_id is not None and form_id != claims.get("iss"):
                raise InvalidClientError(description="client_id does not match the assertion.")
            client = query_client(claims.get("sub")) if isinstance(claims.get("sub"), str) else None
            if client is not None and headers.get("jku") and headers["jku"] != client.jwks_uri:
                raise InvalidClientError(description="jku is not the registered JWKS URL.")
            exp = claims.get("exp")
            if isinstance(exp, int | float) and exp > time.time() + MAX_ASSERTION_LIFETIME:
                raise InvalidClientError(description="exp must be at most 5 minutes ahead.")
        found: Client | None = super().__call__(query_client, request)
        return found

    def get_audiences(self) -> list[str]:
        return [self.server.token_url]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description="The assertion signature is not valid.") from error
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        # kept past exp + leeway, so a replay is caught for as long as exp would pass
        expires = int(claims.get("exp", time.time() + MAX_ASSERTION_LIFETIME)) + 120
        return wait_for(self.server.store.remember_assertion, str(claims["sub"]), str(jti), expires)

    def resolve_client_public_key(self, client: Client) -> jwk.KeySet:
        keys = client.jwks
        if keys is None and client.jwks_uri:
            try:
                response = httpx.get(client.jwks_uri, timeout=5.0)
                response.raise_for_status()
                keys = response.json()
            except (httpx.HTTPError, ValueError) as error:
                raise InvalidClientError(
                    description="The client's JWKS URL cannot be read."
                ) from error
        usable = [
            k for k in (keys or {}).get("keys", []) if k.get("alg") in (None, *ASSERTION_ALGORITHMS)
        ]
        try:
            return jwk.KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError) as error:
            raise InvalidClientError(description="The client's JWKS is not usable.") from error
