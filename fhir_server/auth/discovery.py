"""The discovery documents, built from one list of endpoints so they cannot disagree.

SMART App Launch 2.2 `.well-known/smart-configuration`, the OIDC provider
metadata at `{issuer}/.well-known/openid-configuration` (issuer = FHIR base),
and the CapabilityStatement security block with the `oauth-uris` extension
that SMART v1 clients (and Python `fhirclient`) read.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.assertion import ASSERTION_ALGORITHMS
from fhir_server.auth.urls import auth_base
from fhir_server.settings import Settings

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]
SCOPES = [
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "patient/*.read",
    "patient/*.write",
    "user/*.read",
    "user/*.write",
    "system/*.read",
]
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


def endpoints(settings: Settings) -> dict[str, str]:
    """Every advertised endpoint; `register` (RFC 7591 Dynamic Client Registration) only
    while FHIR_CLIENT_REGISTRATION is on, so discovery never names a closed door."""
    base = auth_base(settings)
    urls = {
        "authorize": f"{base}/authorize",
        "token": f"{base}/token",
        "register": f"{base}/client-registration",
        "manage": f"{base}/manage",
        "introspect": f"{base}/introspect",
        "revoke": f"{base}/revoke",
        "jwks": f"{base}/jwks",
    }
    if not settings.client_registration:
        del urls["register"]
    return urls


def _registration(urls: dict[str, str]) -> dict[str, str]:
    return {"registration_endpoint": urls["register"]} if "register" in urls else {}


def smart_configuration(settings: Settings) -> dict[str, Any]:
    urls = endpoints(settings)
    return {
        "issuer": settings.base_url,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "management_endpoint": urls["manage"],
        **_registration(urls),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "scopes_supported": SCOPES,
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


def openid_configuration(settings: Settings) -> dict[str, Any]:
    urls = endpoints(settings)
    return {
        "issuer": settings.base_url,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        **_registration(urls),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "fhirUser", "nonce"],
        "code_challenge_methods_supported": ["S256"],
    }


def capability_security(settings: Settings) -> dict[str, Any]:
    """CapabilityStatement.rest.security with the same URLs as smart-configuration."""
    urls = endpoints(settings)
    extension = [
        {"url": name, "valueUri": urls[name]}
        for name in ("authorize", "token", "register", "manage", "introspect", "revoke")
        if name in urls
    ]
    return {
        "cors": True,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": extension,
            }
        ],
    }
