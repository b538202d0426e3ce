"""CORS as SMART browser apps need it.

Any origin may read the discovery documents, the JWKS and `/fhir/metadata`;
only the origins of registered redirect URIs may call the token endpoints and
the FHIR API (browser apps are public clients registered with their URIs).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SmartCors:
    """Plain ASGI middleware: requests without an Origin header pass straight through.

    (Starlette's BaseHTTPMiddleware would cost every request a task and a
    response copy; most FHIR traffic is server-to-server and sends no Origin.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        origin = request.headers.get("origin")
        if not origin:
            await self.app(scope, receive, send)
            return
        allowed = await self._allowed(request, origin)
        headers = _cors_headers(allowed)
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            await Response(status_code=204, headers=headers)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _allowed(self, request: Request, origin: str) -> str | None:
        path = request.url.path.rstrip("/") or "/"
        if path in _OPEN:
            return "*"
        auth = getattr(request.app.state, "auth", None)
        registered = path in _REGISTERED or path == "/fhir" or path.startswith("/fhir/")
        if auth is not None and registered and await auth.store.client_with_origin(origin):
            return origin
        return None


def _cors_headers(allowed: str | None) -> dict[str, str]:
    headers = {"Vary": "Origin"}
    if allowed:
        headers.update(
            {
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                "Access-Control-Allow-Methods": _METHODS,
                "Access-Control-Expose-Headers": _EXPOSE,
                "Access-Control-Max-Age": "600",
            }
        )
    return headers
