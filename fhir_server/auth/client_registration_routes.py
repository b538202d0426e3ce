"""`POST /auth/client-registration`: RFC 7591 Dynamic Client Registration over HTTP.

Thin: read the JSON body, hand it to `auth.client_registration`, answer 201
with the client information or 400 with the RFC 7591 error. Limited per
address like the token endpoint; 404 when FHIR_CLIENT_REGISTRATION is off.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from fhir_server.auth.client_registration import RegistrationError, register
from fhir_server.auth.web import NO_STORE, components_of, json_response, throttled

router = APIRouter(include_in_schema=False)


@router.post("/auth/client-registration")
async def register_client(request: Request) -> Response:
    auth = components_of(request)
    if not auth.settings.client_registration:
        return json_response({"error": "not_found"}, 404)
    if limited := await throttled(auth, request, "register"):
        return limited
    try:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise RegistrationError("invalid_client_metadata", "Send the metadata as JSON.")
        try:
            metadata = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise RegistrationError("invalid_client_metadata", "The body is not JSON.") from None
        done = await register(auth.clients, metadata, auth.settings.client_registration_scope)
    except RegistrationError as error:
        body = {"error": error.code, "error_description": error.description}
        return json_response(body, 400, NO_STORE)
    return json_response(done.response, 201, NO_STORE)
