"""Introspection (RFC 7662) and revocation (RFC 7009) on authlib's endpoint classes."""

from __future__ import annotations

from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    OAuth2Request,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from fhir_server.auth.bridge import wait_for
from fhir_server.auth.clients import ASSERTION_METHOD, Client
from fhir_server.auth.grants import ALL_METHODS
from fhir_server.auth.records import TokenRecord
from fhir_server.auth.token_server import TokenServer
from fhir_server.fhir.errors import Unauthorized
from fhir_server.settings import Settings

# -- introspection and revocation ----------------------------------------------------------


def find_token(server: TokenServer, token: str, hint: str | None) -> TokenRecord | None:
    """An access token (a JWT we issued) or a refresh token, from the store."""
    if hint != "refresh_token":
        try:
            claims = wait_for(server.tokens.verify, token)
        except Unauthorized:
            claims = None
        if claims is not None:
            doc = wait_for(server.store.access, str(claims["jti"]))
            if doc is not None:
                return TokenRecord("access", {**doc, "iss": server.tokens.issuer})
    doc = wait_for(server.store.refresh_token, token)
    return TokenRecord("refresh", doc) if doc else None


def may_introspect(caller: Client | None, caller_id: str, record: TokenRecord | None) -> bool:
    """RFC 7662 leaves it to the server whom to tell about a token: a client learns only
    about tokens issued to itself, unless it is registered as a resource server."""
    if record is None:
        return False
    if caller is not None and caller.resource_server:
        return True
    return bool(caller_id) and record.doc.get("client_id") == caller_id


def describe(record: TokenRecord | None, settings: Settings) -> dict[str, Any]:
    """RFC 7662 introspection answer; a dead or unknown token is exactly {"active": false}."""
    if record is None or record.is_expired() or record.is_revoked():
        return {"active": False}
    doc = record.doc
    out: dict[str, Any] = {
        "active": True,
        "scope": doc.get("scope", ""),
        "client_id": doc.get("client_id"),
        "exp": int(doc.get("expires_at", 0)),
        "iss": settings.base_url,
        "token_type": "Bearer" if record.kind == "access" else "refresh_token",
    }
    if doc.get("sub"):
        out["sub"] = doc["sub"]
    if doc.get("patient"):
        out["patient"] = doc["patient"]
    if doc.get("fhir_user"):
        out["fhirUser"] = f"{settings.base_url}/{doc['fhir_user']}"
    if doc.get("role"):  # which of the clinic workspace's pages to offer (RFC 7662 allows more)
        out["role"] = doc["role"]
    return out


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        ASSERTION_METHOD,
    ]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return find_token(self.server, token_string, token_type_hint)

    def check_permission(self, token: TokenRecord, client: Client, request: OAuth2Request) -> bool:
        return may_introspect(client, client.client_id, token)  # else {"active": false}

    def create_introspection_payload(self, token: TokenRecord | None) -> dict[str, Any]:
        return describe(token, self.server.settings)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return find_token(self.server, token_string, token_type_hint)

    def revoke_token(self, token: TokenRecord, request: OAuth2Request) -> None:
        family = token.doc.get("family")
        if family:
            wait_for(self.server.store.revoke_family, family)
        elif token.kind == "access":
            wait_for(self.server.store.revoke_access, token.doc["_id"])
