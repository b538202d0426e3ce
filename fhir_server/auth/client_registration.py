"""OAuth 2.0 Dynamic Client Registration (RFC 7591) for SMART apps.

A SMART app POSTs its metadata as JSON to the `register` endpoint that
`.well-known/smart-configuration` (`registration_endpoint`) and the
CapabilityStatement's oauth-uris advertise, and gets a `client_id` (and a
`client_secret` for `client_secret_basic` / `client_secret_post`) at once.
Only apps that sign users in are registered this way: `authorization_code`
(+ `refresh_token`) with a `redirect_uri`; backend services (system scopes)
are registered by an operator (`fhir-server clients add`). The scope a
registered app may ever be granted is its asked `scope` narrowed to
FHIR_CLIENT_REGISTRATION_SCOPE; every grant is narrowed again by the signed-in
user's role. FHIR_CLIENT_REGISTRATION=false turns the endpoint off, and then
neither discovery document names it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fhir_server.auth.clients import ASSERTION_METHOD, ClientRegistry
from fhir_server.auth.scopes import narrow, split_scope
from fhir_server.auth.users import AccountError

_SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = ("none", *_SECRET_METHODS, ASSERTION_METHOD)
GRANT_TYPES = ("authorization_code", "refresh_token")
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


class RegistrationError(Exception):
    """Refused metadata, with its RFC 7591 error code (`invalid_redirect_uri`, ...)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Registered:
    """The RFC 7591 answer: client information and the metadata as registered."""

    response: dict[str, Any]


def _strings(metadata: dict[str, Any], name: str) -> list[str]:
    value = metadata.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RegistrationError("invalid_client_metadata", f"{name} must be a list of strings.")
    return list(value)


def _redirect_uris(metadata: dict[str, Any]) -> list[str]:
    uris = _strings(metadata, "redirect_uris")
    if not uris:
        raise RegistrationError("invalid_redirect_uri", "redirect_uris is required.")
    for uri in uris:
        parts = urlsplit(uri)
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if parts.fragment or not parts.netloc or not (parts.scheme == "https" or loopback):
            raise RegistrationError(
                "invalid_redirect_uri",
                f"{uri!r} is not an https URI (plain http only for localhost), or has a fragment.",
            )
    return uris


def _method(metadata: dict[str, Any]) -> str:
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise RegistrationError(
            "invalid_client_metadata",
            f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}.",
        )
    return str(method)


def _keys(metadata: dict[str, Any], method: str) -> tuple[dict[str, Any] | None, str | None]:
    jwks, jwks_uri = metadata.get("jwks"), metadata.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise RegistrationError("invalid_client_metadata", "Send jwks or jwks_uri, not both.")
    if method != ASSERTION_METHOD:
        if jwks is not None or jwks_uri is not None:
            raise RegistrationError(
                "invalid_client_metadata", "jwks and jwks_uri are for private_key_jwt clients."
            )
        return None, None
    if jwks_uri is not None:
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme != "https":
            raise RegistrationError("invalid_client_metadata", "jwks_uri must be an https URL.")
        return None, jwks_uri
    if not isinstance(jwks, dict):
        raise RegistrationError(
            "invalid_client_metadata", "private_key_jwt needs jwks or jwks_uri."
        )
    return jwks, None


def _check_flows(metadata: dict[str, Any]) -> None:
    grants = _strings(metadata, "grant_types") or ["authorization_code"]
    if not set(grants) <= set(GRANT_TYPES) or "authorization_code" not in grants:
        raise RegistrationError(
            "invalid_client_metadata",
            "grant_types may be authorization_code and refresh_token (backend services are "
            "registered by an operator).",
        )
    if set(_strings(metadata, "response_types") or ["code"]) != {"code"}:
        raise RegistrationError("invalid_client_metadata", "response_types must be ['code'].")


async def register(registry: ClientRegistry, metadata: Any, allowed_scope: str) -> Registered:
    """Register a client from RFC 7591 metadata, or raise RegistrationError."""
    if not isinstance(metadata, dict):
        raise RegistrationError("invalid_client_metadata", "The body must be a JSON object.")
    redirect_uris = _redirect_uris(metadata)
    method = _method(metadata)
    jwks, jwks_uri = _keys(metadata, method)
    _check_flows(metadata)
    asked = metadata.get("scope", allowed_scope)
    if not isinstance(asked, str):
        raise RegistrationError("invalid_client_metadata", "scope must be a string.")
    scope = " ".join(narrow(split_scope(asked), split_scope(allowed_scope)))
    if not scope:
        raise RegistrationError(
            "invalid_client_metadata", "None of the requested scopes may be registered here."
        )
    name = metadata.get("client_name") or "Unnamed app"
    if not isinstance(name, str):
        raise RegistrationError("invalid_client_metadata", "client_name must be a string.")
    secret = secrets.token_urlsafe(32) if method in _SECRET_METHODS else None
    client_id = f"dcr-{secrets.token_urlsafe(16)}"
    try:
        client = await registry.add(
            client_id,
            name[:200],
            "public" if method == "none" else "confidential",
            scope,
            redirect_uris=redirect_uris,
            secret=secret,
            jwks=jwks,
            jwks_uri=jwks_uri,
        )
    except AccountError as error:
        raise RegistrationError("invalid_client_metadata", str(error)) from None
    response: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(time.time()),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": _strings(metadata, "grant_types") or ["authorization_code"],
        "response_types": ["code"],
        "scope": client.scope,
    }
    if secret is not None:
        response |= {"client_secret": secret, "client_secret_expires_at": 0}
    if jwks is not None:
        response["jwks"] = jwks
    if jwks_uri is not None:
        response["jwks_uri"] = jwks_uri
    return Registered(response)
