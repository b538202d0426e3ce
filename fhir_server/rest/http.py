"""The HTTP face of the FHIR API: Starlette requests to `FhirRequest`s and back.

This is the one place where errors become OperationOutcome responses.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_server.fhir.errors import (
    BadRequest,
    FhirError,
    Issue,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    operation_outcome,
)
from fhir_server.fhir.jsonio import dumps, loads_body
from fhir_server.rest.bundles import process_bundle
from fhir_server.rest.capability import capability_statement
from fhir_server.rest.dispatch import dispatch
from fhir_server.rest.messages import FhirRequest, FhirResponse
from fhir_server.rest.services import Services
from fhir_server.rest.shaping import FHIR_JSON, Output, output_options, shape
from fhir_server.store.clock import now_instant
from fhir_server.store.connection import RETRY_AFTER_SECONDS, UNREACHABLE

log = logging.getLogger("fhir_server.http")

_BODY_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
_PATCH_TYPES = {"application/json-patch+json"}
_FORM = "application/x-www-form-urlencoded"
_WITH_BODY = {"POST", "PUT", "PATCH"}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def fhir_json_response(
    status: int,
    resource: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
    *,
    media: str = FHIR_JSON,
    pretty: bool = False,
) -> Response:
    body = dumps(resource, pretty=pretty) if resource is not None else b""
    return Response(
        content=body,
        status_code=status,
        headers=headers,
        media_type=f"{media}; charset=utf-8" if resource is not None else None,
    )


def error_response(error: FhirError) -> Response:
    return fhir_json_response(error.status, error.outcome(), error.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over the {limit}-byte limit.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is over the {limit}-byte limit.")
    return bytes(body)


def _parse_body(method: str, content_type: str, raw: bytes) -> tuple[Any, list[tuple[str, str]]]:
    """(JSON body, form parameters) according to the Content-Type."""
    if content_type == _FORM:
        return None, parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    if not raw:
        if method == "POST":
            return None, []
        raise BadRequest("The request needs a body.")
    allowed = _PATCH_TYPES | _BODY_TYPES if method == "PATCH" else _BODY_TYPES
    if content_type and content_type not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r:.60} is not accepted; send application/fhir+json"
            + (" or application/json-patch+json." if method == "PATCH" else ".")
        )
    return loads_body(raw), []


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def to_fhir_request(request: Request, path: list[str], limit: int) -> FhirRequest:
    params = parse_qsl(request.url.query, keep_blank_values=True)
    body: Any = None
    if request.method in _WITH_BODY:
        raw = await _read_body(request, limit)
        body, form = _parse_body(request.method, _content_type(request), raw)
        params += form
        if body is not None and not isinstance(body, dict | list):
            raise BadRequest("The request body must be a JSON object.")
    return FhirRequest(
        method=request.method,
        path=path,
        params=params,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
    )


def _respond(request: Request, result: FhirResponse, output: Output) -> Response:
    resource = result.resource
    if resource is not None:
        resource = shape(resource, output)
    if request.method == "HEAD":
        resource = None
    return fhir_json_response(
        result.status, resource, result.headers, media=output.media, pretty=output.pretty
    )


def _store_unreachable(request: Request, exc: Exception) -> Response:
    """503 with Retry-After while the store cannot be reached: an OperationOutcome, or on
    the authorization server's endpoints the OAuth error `temporarily_unavailable`."""
    log.warning("store unreachable (%s) in %s %s", type(exc).__name__, request.method,
                request.url.path)  # fmt: skip
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    text = "The data store is not reachable right now; retry shortly."
    if request.url.path.startswith("/auth/"):
        body = {"error": "temporarily_unavailable", "error_description": text}
        return Response(dumps(body), 503, headers, media_type="application/json")
    return error_response(ServiceUnavailable(text, headers=headers))


async def _unreachable(request: Request, exc: Exception) -> Response:
    return _store_unreachable(request, exc)


def _internal_error(request: Request, exc: Exception) -> Response:
    """A 500 says "Internal Server Error" and nothing more; the log names only the type."""
    if isinstance(exc, UNREACHABLE):
        return _store_unreachable(request, exc)
    log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.url.path)
    outcome = operation_outcome([Issue("exception", "Internal Server Error")])
    return fhir_json_response(500, outcome)


async def _handle(request: Request, services: Services) -> tuple[FhirRequest, FhirResponse]:
    path = [p for p in request.url.path.split("/")[2:] if p]
    auth = None  # authenticated before the body is read: no feedback for anonymous callers
    if services.access is not None:
        auth = services.public_caller(path) or await services.access.authenticate(
            request.headers.get("authorization")
        )
    req = await to_fhir_request(request, path, services.settings.max_body_bytes)
    req.method = "GET" if request.method == "HEAD" else request.method
    req.auth = auth
    if not path and services.access is not None:
        return req, await services.access.guard(services, req, lambda r: _system(services, r))
    if not path:
        return req, await _system(services, req)
    return req, await dispatch(services, req)


async def fhir_endpoint(request: Request) -> Response:
    try:
        output = output_options(
            request.query_params, request.headers.get("accept"), _content_type(request)
        )
        address = request.client.host if request.client else "unknown"
        await request.app.state.limiter.check(address, request.headers.get("authorization"))
        req, result = await _handle(request, services_of(request))
        if req.path[-1:] == ["_search"]:  # a form body may carry _summary/_elements too
            output = output_options(dict(req.params), request.headers.get("accept"))
        return _respond(request, result, output)
    except FhirError as error:
        return error_response(error)
    except Exception as exc:  # the edge: anything unexpected becomes a bare 500
        return _internal_error(request, exc)


async def _system(services: Services, req: FhirRequest) -> FhirResponse:
    if req.method == "POST":
        if not isinstance(req.body, dict):
            raise BadRequest("POST to the base URL takes a batch or transaction Bundle.")
        return await process_bundle(services, req.body, req.auth)
    if req.method == "GET":
        if req.param("_type") is None:
            raise BadRequest("A system search needs _type.", expression=("_type",))
        return FhirResponse(
            200,
            await services.searcher.search_bundle(
                None, req.params, strict=False, limits=req.limits
            ),
        )
    raise MethodNotAllowed(f"{req.method} is not supported on the base URL.")


async def metadata(request: Request) -> Response:
    try:
        output = output_options(request.query_params, request.headers.get("accept"))
    except FhirError as error:
        return error_response(error)
    statement = capability_statement(services_of(request), request.app.state.started_at)
    return _respond(request, FhirResponse(200, statement), output)


async def _unhandled(request: Request, exc: Exception) -> Response:
    return _internal_error(request, exc)


async def _http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(NotFound("No such endpoint."))
    if exc.status_code == 405:
        return error_response(MethodNotAllowed("Method not allowed on this endpoint."))
    outcome = operation_outcome([Issue("processing", str(exc.detail)[:200])])
    return fhir_json_response(exc.status_code, outcome)


def install_fhir_routes(app: FastAPI) -> None:
    app.state.started_at = now_instant()
    app.add_api_route("/fhir/metadata", metadata, methods=["GET", "HEAD"], include_in_schema=False)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app.add_api_route("/fhir", fhir_endpoint, methods=methods, include_in_schema=False)
    app.add_api_route("/fhir/{path:path}", fhir_endpoint, methods=methods, include_in_schema=False)
    app.add_exception_handler(StarletteHTTPException, _http_exception)  # type: ignore[arg-type]
    for unreachable in UNREACHABLE:  # handled here, so not re-raised to the server as a 500
        app.add_exception_handler(unreachable, _unreachable)
    app.add_exception_handler(Exception, _unhandled)
