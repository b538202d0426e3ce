"""`$apps`, `$register-app`, `$rotate-app-credentials`, `$remove-app`: SMART apps (admins only).

The same registry as `fhir-server clients ...` and RFC 7591 registration
(`auth.clients`). A generated client secret is in the answer once and stored
hashed; new credentials end the sessions the old ones opened. The server's
own web clients (the portal, the clinic) are registered at every start and
are neither rotated nor removed here.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.clients import Client, new_secret
from fhir_server.fhir.errors import BadRequest, NotFound, Unprocessable
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.admin_support import (
    Inputs,
    account_errors,
    admin_definition,
    group,
    method,
    operation,
    parameters,
    part,
    record,
)
from fhir_server.rest.operations.parameters import param
from fhir_server.rest.services import Operation, Services

_APP = param(
    "app",
    "out",
    "string",
    max_="*",
    doc="One app: parts clientId, name, type, scope, redirectUri (repeated), jwksUri, jwks "
    "(whether a key set is held), firstParty.",
)
_SECRET = param("clientSecret", "out", "string", doc="The new secret, shown this once.")
_CLIENT_ID = param("clientId", "in", "string", min_=1, doc="The app's client_id.")
_KEYS = [
    param("jwks", "in", "string", doc="A JSON Web Key Set (JSON text) for private_key_jwt."),
    param("jwksUri", "in", "string", doc="Or the URL of the app's key set."),
]
APPS = admin_definition("apps", "Every registered SMART app.", [_APP], changes=False)
REGISTER = admin_definition(
    "register-app",
    "Register a SMART app: public (PKCE), confidential (a generated secret, or keys) or "
    "backend (keys, system/ scopes).",
    [
        param("name", "in", "string", min_=1, doc="Shown to users on the consent page."),
        param("type", "in", "code", min_=1, doc="public, confidential or backend."),
        param("scope", "in", "string", min_=1, doc="The most this app may be granted."),
        param("redirectUri", "in", "string", max_="*", doc="Exact redirect URI."),
        *_KEYS,
        param("clientId", "in", "string", doc="The client_id; generated when absent."),
        {**_APP, "max": "1"},
        _SECRET,
    ],
    changes=True,
)
ROTATE = admin_definition(
    "rotate-app-credentials",
    "New credentials for an app: the key set given, or else a new secret. Its sessions end.",
    [_CLIENT_ID, *_KEYS, {**_APP, "max": "1"}, _SECRET],
    changes=True,
)
REMOVE = admin_definition(
    "remove-app",
    "Unregister an app: its tokens stop working.",
    [_CLIENT_ID],
    changes=True,
)


def app_part(client: Client) -> dict[str, Any]:
    return group(
        "app",
        part("clientId", client.client_id),
        part("name", client.name),
        part("type", client.kind),
        part("scope", client.scope),
        *(part("redirectUri", uri) for uri in client.redirect_uris),
        part("jwksUri", client.jwks_uri),
        part("jwks", client.jwks is not None),
        part("firstParty", client.first_party),
    )


def _jwks(given: Inputs) -> dict[str, Any] | None:
    text = given.text("jwks")
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadRequest("jwks must be a JSON Web Key Set (JSON).", expression=("jwks",)) from None
    if not isinstance(value, dict):
        raise BadRequest("jwks must be a JSON object with 'keys'.", expression=("jwks",))
    return value


async def apps(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "apps", changes=False)
    return parameters(*(app_part(c) for c in await auth.clients.list()))


async def register(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "register-app", changes=True)
    given = Inputs(req)
    kind = given.text("type", required=True) or ""
    jwks, jwks_uri = _jwks(given), given.text("jwksUri")
    secret = new_secret() if kind == "confidential" and not (jwks or jwks_uri) else None
    client_id = given.text("clientId") or f"app-{secrets.token_urlsafe(12)}"
    with account_errors():
        client = await auth.clients.add(
            client_id[:100],
            (given.text("name", required=True) or "")[:200],
            kind,
            given.text("scope", required=True) or "",
            redirect_uris=given.texts("redirectUri"),
            secret=secret,
            jwks=jwks,
            jwks_uri=jwks_uri,
        )
    await record(auth, req, "app-registered", ("app", client.client_id), f"type {kind}")
    return parameters(app_part(client), part("clientSecret", secret))


async def rotate(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "rotate-app-credentials", changes=True)
    given = Inputs(req)
    client_id = given.text("clientId", required=True) or ""
    jwks, jwks_uri = _jwks(given), given.text("jwksUri")
    with account_errors():
        secret = await auth.clients.rotate(client_id, jwks, jwks_uri)
    client = await auth.clients.get(client_id)
    assert client is not None  # rotated just now
    done = "new secret" if secret else "new keys"
    await record(auth, req, "app-credentials-rotated", ("app", client_id), done)
    return parameters(app_part(client), part("clientSecret", secret))


async def remove(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "remove-app", changes=True)
    client_id = Inputs(req).text("clientId", required=True) or ""
    client = await auth.clients.get(client_id)
    if client is None:
        raise NotFound(f"There is no client {client_id[:100]!r}.")
    if client.first_party:
        raise Unprocessable("The server's own web clients are registered at every start.")
    await auth.clients.remove(client_id)
    await auth.store.revoke_client_tokens(client_id)
    await record(auth, req, "app-removed", ("app", client_id))
    return parameters(part("removed", True))


def operations(auth: AuthComponents) -> list[Operation]:
    return [
        operation(auth, APPS, apps),
        operation(auth, REGISTER, register),
        operation(auth, ROTATE, rotate),
        operation(auth, REMOVE, remove),
    ]
