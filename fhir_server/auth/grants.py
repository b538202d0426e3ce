"""authlib's grants with SMART 2 behaviour: S256-only PKCE from every client, scope
narrowing by role, refresh tokens by `offline_access`, rotation with reuse detection,
and refresh by a public client that sends only the refresh token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge

from fhir_server.auth.bridge import wait_for
from fhir_server.auth.clients import ASSERTION_METHOD, Client
from fhir_server.auth.records import CodeRecord, Subject, TokenRecord, scope_for
from fhir_server.auth.scopes import narrow, split_scope

ALL_METHODS = ["client_secret_basic", "client_secret_post", ASSERTION_METHOD, "none"]


# -- grants -----------------------------------------------------------------------


class SmartPkce(CodeChallenge):  # type: ignore[misc]
    """PKCE as SMART 2 wants it: S256 only, and a verifier from every client."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    CODE_CHALLENGE_METHODS: ClassVar[dict[str, Callable[[str, str], bool]]] = {
        "S256": compare_s256_code_challenge
    }

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: Client = grant.request.client
        if not data.get("code_challenge") and not client.require_pkce:
            return
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        client: Client = grant.request.client
        code: CodeRecord = grant.request.authorization_code
        if client.require_pkce or code.code_challenge:
            if not grant.request.form.get("code_verifier"):
                raise InvalidRequestError("Missing 'code_verifier'.")
            if not code.code_challenge:
                raise InvalidGrantError("The authorization had no code_challenge.")
        super().validate_code_verifier(grant, result)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    AUTHORIZATION_CODE_LENGTH = 48

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        aud = self.request.payload.data.get("aud")
        if aud is not None and aud.rstrip("/") != self.server.settings.base_url:
            raise InvalidRequestError(
                "aud must be this server's FHIR base URL.", redirect_uri=redirect_uri
            )
        if aud is None and not self.request.payload.data.get("launch"):
            raise InvalidRequestError("aud is required.", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        subject: Subject = request.user
        data = request.payload.data
        doc = {
            **subject.grant_fields(),
            "client_id": request.client.client_id,
            "redirect_uri": request.payload.redirect_uri,
            "scope": scope_for(subject, request.scope),
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "nonce": data.get("nonce"),
            "expires_at": int(time.time()) + self.server.settings.authorization_code_lifetime,
        }
        wait_for(self.server.store.save_code, code, doc)

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        doc = wait_for(self.server.store.code, code)
        if doc is None or doc["client_id"] != client.client_id:
            return None
        if not wait_for(self.server.store.claim_code, code):
            wait_for(self.server.store.revoke_family, doc["family"])  # a replayed code
            return None
        if doc["expires_at"] <= int(time.time()):
            return None
        return CodeRecord(doc)

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: the code was claimed (single use) when it was looked up."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Subject:
        return Subject.of(authorization_code.doc)


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_token_endpoint_client(self) -> Client:
        """A public app refreshes without naming itself (SMART App Launch: public clients
        are not authenticated on refresh, and the SMART JS client sends no client_id):
        the refresh token's own client stands in, when that client is public. Whoever
        names a client, or holds a confidential client's token, authenticates as usual."""
        request = self.request
        named = request.form.get("client_id") or request.form.get("client_assertion")
        if not named and "authorization" not in request.headers:
            text = request.form.get("refresh_token")
            doc = wait_for(self.server.store.refresh_token, text) if text else None
            owner: Client | None = self.server.query_client(doc["client_id"]) if doc else None
            if owner is not None and owner.kind == "public":
                return owner
        client: Client = super().authenticate_token_endpoint_client()
        return client

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        doc = wait_for(self.server.store.refresh_token, refresh_token)
        if doc is None or doc.get("revoked"):
            return None
        if doc.get("used"):
            wait_for(self.server.store.revoke_family, doc["family"])  # reuse of a rotated token
            return None
        record = TokenRecord("refresh", doc)
        return None if record.is_expired() else record

    def _validate_token_scope(self, token: TokenRecord) -> None:
        scope = self.request.payload.scope
        if scope and not narrow(split_scope(scope), split_scope(token.get_scope())):
            raise InvalidScopeError("A refresh may narrow the scope, never widen it.")

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if not wait_for(self.server.store.claim_refresh, self.request.form["refresh_token"]):
            wait_for(self.server.store.revoke_family, self.request.refresh_token.doc["family"])
            raise InvalidGrantError("The refresh token was already used.")

    def issue_token(self, user: Subject, refresh_token: TokenRecord) -> dict[str, Any]:
        original = split_scope(refresh_token.get_scope())
        asked = self.request.payload.scope
        scope = " ".join(narrow(split_scope(asked), original)) if asked else " ".join(original)
        token: dict[str, Any] = self.generate_token(
            user=user, scope=scope, include_refresh_token=True
        )
        return token

    def authenticate_user(self, refresh_token: TokenRecord) -> Subject:
        return Subject.of(refresh_token.doc)

    def revoke_old_credential(self, refresh_token: TokenRecord) -> None:
        """Nothing to do: the old token was marked used before the new one was made."""


class BackendGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [ASSERTION_METHOD]

    def create_token_response(self) -> tuple[int, Any, Any]:
        scope = self.client.get_allowed_scope(self.request.payload.scope)
        if not scope:
            raise InvalidScopeError("None of the requested scopes is allowed for this client.")
        token = self.generate_token(scope=scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
