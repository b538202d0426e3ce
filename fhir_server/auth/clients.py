"""Registered OAuth clients and the rules authlib asks them about.

Three kinds: `public` (browser and native apps; no secret, PKCE), `confidential`
(a secret, or a JWKS for `private_key_jwt`) and `backend` (SMART Backend
Services: `client_credentials` with `private_key_jwt` and `system/` scopes).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin

from fhir_server.auth.scopes import narrow, only_contexts, parse_resource_scope, split_scope
from fhir_server.auth.users import AccountError, NotRegistered, hash_secret, verify_secret
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

KINDS = ("public", "confidential", "backend")
ASSERTION_METHOD = "private_key_jwt"


def origin_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    name: str
    kind: str
    scope: str
    redirect_uris: list[str] = field(default_factory=list)
    secret_hash: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    require_pkce: bool = True
    # A resource server (or admin tool) may introspect any client's tokens; any other
    # client only its own (`clients add --resource-server`).
    resource_server: bool = False
    # The server's own web client (the patient portal): a patient signing in to it is not
    # asked to allow access, since the clinic is not a third party to its own patients.
    first_party: bool = False

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Client:
        return cls(
            client_id=doc["_id"],
            name=doc["name"],
            kind=doc["kind"],
            scope=doc["scope"],
            redirect_uris=list(doc.get("redirect_uris", [])),
            secret_hash=doc.get("secret_hash"),
            jwks=doc.get("jwks"),
            jwks_uri=doc.get("jwks_uri"),
            require_pkce=doc.get("require_pkce", True),
            resource_server=bool(doc.get("resource_server", False)),
            first_party=bool(doc.get("first_party", False)),
        )

    def public_view(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "type": self.kind,
            "scope": self.scope,
            "redirect_uris": self.redirect_uris,
            "jwks_uri": self.jwks_uri,
            "jwks": self.jwks,
            "require_pkce": self.require_pkce,
            "resource_server": self.resource_server,
        }

    # -- authlib's ClientMixin ---------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # SMART clients always send redirect_uri

    def get_allowed_scope(self, scope: str | None) -> str | None:
        granted = narrow(split_scope(scope), split_scope(self.scope))
        if self.kind == "backend":
            granted = only_contexts(granted, ("system",))
        else:
            granted = only_contexts(granted, ("patient", "user"))
        return " ".join(granted) if granted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.kind == "public":
            return method == "none"
        if method == ASSERTION_METHOD:
            return bool(self.jwks or self.jwks_uri)
        if method in ("client_secret_basic", "client_secret_post"):
            return self.kind == "confidential" and self.secret_hash is not None
        return False

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.kind != "backend"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.kind == "backend":
            return grant_type == "client_credentials"
        return grant_type in ("authorization_code", "refresh_token")


class ClientRegistry:
    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings  # the cost of a new secret's hash

    async def get(self, client_id: str) -> Client | None:
        doc = await self.store.client(client_id)
        return Client.of(doc) if doc else None

    async def add(
        self,
        client_id: str,
        name: str,
        kind: str,
        scope: str,
        *,
        redirect_uris: list[str] | None = None,
        secret: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        require_pkce: bool = True,
        resource_server: bool = False,
        first_party: bool = False,
    ) -> Client:
        redirect_uris = redirect_uris or []
        _check(kind, scope, redirect_uris, secret, jwks, jwks_uri)
        if not require_pkce and kind == "public":
            raise AccountError("Only a confidential client may be registered without PKCE.")
        require_pkce = require_pkce and kind != "backend"  # no authorization codes at all
        doc = {
            "_id": client_id,
            "name": name,
            "kind": kind,
            "scope": " ".join(split_scope(scope)),
            "redirect_uris": redirect_uris,
            "origins": sorted({origin_of(u) for u in redirect_uris}),
            "secret_hash": await hash_secret(secret, self.settings) if secret else None,
            "jwks": jwks,
            "jwks_uri": jwks_uri,
            "require_pkce": require_pkce,
            "resource_server": resource_server,
            "first_party": first_party,
            "created": int(time.time()),
        }
        if not await self.store.add_client(doc):
            raise AccountError(f"A client with id {client_id!r} already exists.")
        return Client.of(doc)

    async def rotate(
        self,
        client_id: str,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
    ) -> str | None:
        """New credentials for a client: the keys given (a JWKS or its URL) for a client
        that signs assertions, else a new secret for a confidential one (returned, shown
        once). Its refresh tokens stop working: whoever held the old credentials is out."""
        client = await self.get(client_id)
        if client is None:
            raise NotRegistered(f"There is no client {client_id[:100]!r}.")
        if client.first_party:
            raise AccountError("The server's own web clients get their credentials at start.")
        if jwks is not None or jwks_uri is not None:
            if client.kind == "public" or client.secret_hash is not None:
                raise AccountError("Only a client that signs its assertions has keys to replace.")
            _check(client.kind, client.scope, client.redirect_uris, None, jwks, jwks_uri)
            await self.store.update_client(client_id, {"jwks": jwks, "jwks_uri": jwks_uri})
            secret = None
        elif client.kind == "confidential" and client.secret_hash is not None:
            secret = new_secret()
            await self.store.update_client(
                client_id, {"secret_hash": await hash_secret(secret, self.settings)}
            )
        else:
            raise AccountError("This client has no secret: give its new JWKS or JWKS URL.")
        await self.store.revoke_client_tokens(client_id)
        return secret

    async def remove(self, client_id: str) -> bool:
        return await self.store.remove_client(client_id)

    async def list(self) -> list[Client]:
        return [Client.of(doc) for doc in await self.store.list_clients()]


def _check(
    kind: str,
    scope: str,
    redirect_uris: list[str],
    secret: str | None,
    jwks: dict[str, Any] | None,
    jwks_uri: str | None,
) -> None:
    if kind not in KINDS:
        raise AccountError(f"The client type must be one of {', '.join(KINDS)}.")
    if not split_scope(scope):
        raise AccountError("A client needs at least one scope.")
    if jwks is not None and not (isinstance(jwks.get("keys"), list) and jwks["keys"]):
        raise AccountError("The JWKS has no keys: a client's JWKS needs at least one key.")
    if kind == "backend":
        if not (jwks or jwks_uri):
            raise AccountError("A backend client needs --jwks-file or --jwks-uri.")
        if any(
            (p := parse_resource_scope(s)) and p.context != "system" for s in split_scope(scope)
        ):
            raise AccountError("A backend client may only have system/ scopes.")
        return
    if not redirect_uris:
        raise AccountError("A public or confidential client needs at least one --redirect-uri.")
    if kind == "public" and secret:
        raise AccountError("A public client has no secret.")
    if kind == "confidential" and not (secret or jwks or jwks_uri):
        raise AccountError("A confidential client needs a secret or a JWKS.")


def new_secret() -> str:
    return secrets.token_urlsafe(32)
