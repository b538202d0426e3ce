"""`$signing-keys`, `$rotate-signing-key`: the keys that sign tokens (admins only).

Rotation is `fhir-server keys rotate` over the API: a new key signs from now
on in this process at once (other replicas pick it up within a minute, as
after the command), and retired keys stay published until every token they
signed has expired (`auth.keys`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.keys import key_list, rotate
from fhir_server.fhir.instants import fhir_instant
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.operations.admin_support import (
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

_KEY = param(
    "key",
    "out",
    "string",
    max_="*",
    doc="One published key, newest first: parts kid, created, retired, signing.",
)
KEYS = admin_definition("signing-keys", "The token signing keys.", [_KEY], changes=False)
ROTATE = admin_definition(
    "rotate-signing-key",
    "Start signing tokens with a new key; earlier keys stay published until their tokens expire.",
    [param("kid", "out", "string", min_=1, doc="The new signing key's id."), _KEY],
    changes=True,
)


def _key_part(key: dict[str, Any]) -> dict[str, Any]:
    retired = key.get("retired_at")
    return group(
        "key",
        part("kid", key["kid"]),
        {"name": "created", "valueInstant": fhir_instant_of(key["created"])},
        {"name": "retired", "valueInstant": fhir_instant_of(retired)} if retired else None,
        part("signing", key["signing"]),
    )


def fhir_instant_of(seconds: float) -> str:
    return fhir_instant(datetime.fromtimestamp(seconds, UTC))


async def keys(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "signing-keys", changes=False)
    return parameters(*(_key_part(k) for k in await key_list(auth.store)))


async def rotate_key(auth: AuthComponents, services: Services, req: FhirRequest) -> FhirResponse:
    method(req, "rotate-signing-key", changes=True)
    kid = await rotate(auth.store, auth.settings)
    await auth.tokens.reload_keys_if_stale(max_age=0.0)
    await record(auth, req, "signing-key-rotated", ("key", kid))
    return parameters(part("kid", kid), *(_key_part(k) for k in await key_list(auth.store)))


def operations(auth: AuthComponents) -> list[Operation]:
    return [operation(auth, KEYS, keys), operation(auth, ROTATE, rotate_key)]
