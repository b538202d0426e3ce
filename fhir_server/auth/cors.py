"""CORS as SMART browser apps need it.

Any origin may read the discovery documents, the JWKS and `/fhir/metadata`;
only the origins of registered redirect URIs may call the token endpoints and
the FHIR API (browser apps are public clients registered with their URIs).
"""

from __future__ import annotations

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

_OPEN = frozenset(
    {
        "/fhir/metadata",
        "/fhir/.well-known/smart-configuration",
        "/fhir/.well-known/openid-configuration",
        "/auth/jwks",
        "/auth/style",
    }
)
_REGISTERED = ("/auth/token", "/auth/revoke", "/auth/introspect")
_ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, Prefer, "
    "If-Match, If-None-Match, If-None-Exist, If-Modified-Since"
)
_EXPOSE = "Location, ETag, Content-Location, Last-Modified, WWW-Authenticate"
_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


class SmartCors(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        origin = request.headers.get("origin")
        if not origin:
            return await call_next(request)
        allowed = await self._allowed(request, origin)
        preflight = (
            request.method == "OPTIONS" and "access-control-request-method" in request.headers
        )
        response = Response(status_code=204) if preflight else await call_next(request)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
            response.headers["Access-Control-Allow-Methods"] = _METHODS
            response.headers["Access-Control-Expose-Headers"] = _EXPOSE
            response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
        return response

    async def _allowed(self, request: Request, origin: str) -> str | None:
        path = request.url.path.rstrip("/") or "/"
        if path in _OPEN:
            return "*"
        auth = getattr(request.app.state, "auth", None)
        registered = path in _REGISTERED or path == "/fhir" or path.startswith("/fhir/")
        if auth is not None and registered and await auth.store.client_with_origin(origin):
            return origin
        return None
