"""The SMART authorization server: authlib's `AuthorizationServer` on our store.

It registers the SMART grants (`auth.grants`), `private_key_jwt` client
authentication (`auth.assertion`) and introspection and revocation
(`auth.token_endpoints`), and turns a grant into the token response: a signed
access token, an id_token with `openid`, a refresh token with
`offline_access` / `online_access`, and the launch context fields. Where
authlib's defaults differ from SMART App Launch 2.2 the override lives next to
the class it changes (see shared notes "SMART App Launch on authlib").
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidScopeError,
    OAuth2Request,
)

from fhir_server.auth.assertion import PrivateKeyJwt
from fhir_server.auth.bridge import wait_for
from fhir_server.auth.clients import ASSERTION_METHOD, Client
from fhir_server.auth.grants import BackendGrant, CodeGrant, RefreshGrant, SmartPkce
from fhir_server.auth.records import Subject
from fhir_server.auth.scopes import is_known_scope, split_scope
from fhir_server.auth.token_endpoints import Introspection, Revocation
from fhir_server.auth.tokens import Tokens
from fhir_server.auth.urls import auth_base
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

# -- the server ---------------------------------------------------------------------


class SmartAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, store: AuthStore, tokens: Tokens, settings: Settings) -> None:
        super().__init__()
        self.store = store
        self.tokens = tokens
        self.settings = settings
        self.register_token_generator("default", self._generate)
        self.register_client_auth_method(ASSERTION_METHOD, PrivateKeyJwt(self))
        self.register_grant(CodeGrant, [SmartPkce()])
        self.register_grant(RefreshGrant)
        self.register_grant(BackendGrant)
        self.register_endpoint(Introspection(self))
        self.register_endpoint(Revocation(self))

    @property
    def token_url(self) -> str:
        return f"{auth_base(self.settings)}/token"

    def query_client(self, client_id: str) -> Client | None:
        doc = wait_for(self.store.client, client_id)
        return Client.of(doc) if doc else None

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        """The routes build the request (`StarletteOAuth2Request`) before calling in."""
        return request

    def validate_requested_scope(self, scope: str | None) -> None:
        if not any(is_known_scope(s) for s in split_scope(scope)):
            raise InvalidScopeError("None of the requested scopes is known here.")

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signals are not used: the routes record audit events."""

    def _generate(
        self,
        grant_type: str,
        client: Client,
        user: Subject | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        subject = user or Subject(sub=None)
        granted = split_scope(scope)
        grant = {
            **subject.grant_fields(),
            "client_id": client.client_id,
            "scope": " ".join(granted),
        }
        issued = self.tokens.access_token(grant)
        token: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_at - int(time.time()),
            "scope": grant["scope"],
        }
        if subject.patient and ("launch/patient" in granted or "launch" in granted):
            token["patient"] = subject.patient
        if subject.ehr_launch:
            token["need_patient_banner"] = True
            token["smart_style_url"] = f"{auth_base(self.settings)}/style"
        if subject.fhir_user and "fhirUser" in granted:
            token["fhirUser"] = f"{self.settings.base_url}/{subject.fhir_user}"
        if "openid" in granted and subject.sub:
            token["id_token"] = self.tokens.id_token(grant, subject.nonce)
        refresh = None
        if include_refresh_token and ({"offline_access", "online_access"} & set(granted)):
            refresh = secrets.token_urlsafe(48)
            token["refresh_token"] = refresh
        # Private to save_token, removed before the response is sent.
        token["_record"] = {"grant": grant, "jti": issued.jti, "exp": issued.expires_at}
        token["_refresh"] = refresh
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        record = token.pop("_record")
        refresh = token.pop("_refresh")
        grant = record["grant"]
        wait_for(
            self.store.save_access,
            {**grant, "_id": record["jti"], "expires_at": record["exp"], "kind": "access"},
        )
        if refresh:
            lifetime = self.settings.refresh_token_lifetime
            wait_for(
                self.store.save_refresh,
                refresh,
                {**grant, "expires_at": int(time.time()) + lifetime},
            )
