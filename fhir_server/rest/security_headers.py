"""Headers every answer carries so browsers and caches keep patient data to themselves.

- `X-Content-Type-Options: nosniff` on everything: a FHIR JSON body holding
  user-written text is never run as HTML or script.
- `Cache-Control: no-store` on the FHIR API (PHI): no shared or browser cache
  keeps a copy. The public documents (`/fhir/metadata`, `.well-known`) keep
  theirs, and an answer that set its own Cache-Control keeps it.
- `Strict-Transport-Security` when the request came over https (directly, or
  from a trusted proxy's `X-Forwarded-Proto`): browsers stay on https.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_PUBLIC = ("/fhir/metadata", "/fhir/.well-known/")


def _holds_phi(path: str) -> bool:
    return (path == "/fhir" or path.startswith("/fhir/")) and not path.startswith(_PUBLIC)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [_NOSNIFF]
        if scope.get("scheme") == "https":
            extra.append(_HSTS)
        phi = _holds_phi(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                added = list(extra)
                if phi and not any(name.lower() == b"cache-control" for name, _ in headers):
                    added.append(_NO_STORE)
                message["headers"] = headers + added
            await send(message)

        await self.app(scope, receive, send_with_headers)
