"""What the authorization server's HTML and JSON routes share.

Pages are Jinja2 templates with autoescaping. Between a sign-in form and the
next form, the user is identified by a short-lived HMAC-signed ticket bound to
the exact request it was issued for, so no server-side session is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fhir_server.auth.bootstrap import AuthComponents

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_TICKET_SECONDS = 600
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Sign-in and consent pages must not be framed by another site (clickjacking).
_NO_FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


def components_of(request: Request) -> AuthComponents:
    auth: AuthComponents | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise HTTPException(status_code=404)  # authorization is turned off
    return auth


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status, headers={**NO_STORE, **_NO_FRAMING})


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def throttled(auth: AuthComponents, request: Request, endpoint: str) -> Response | None:
    """A 429 answer when this address made too many requests to `endpoint` this minute."""
    window = int(time.time() // 60)
    count = await auth.store.hit(f"{endpoint}|{client_ip(request)}", window)
    if count > auth.settings.rate_limit_per_minute:
        body = {"error": "slow_down", "error_description": "Too many requests; wait a minute."}
        return json_response(body, 429, {"Retry-After": "60"})
    return None


def _ticket_digest(pairs: list[tuple[str, str]]) -> str:
    return hashlib.sha256(urlencode(sorted(pairs)).encode()).hexdigest()


def _sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def make_ticket(secret: str, username: str, pairs: list[tuple[str, str]]) -> str:
    body = f"{username}|{int(time.time()) + _TICKET_SECONDS}|{_ticket_digest(pairs)}"
    return f"{body}|{_sign(secret, body)}"


def read_ticket(secret: str, ticket: str, pairs: list[tuple[str, str]]) -> str | None:
    """The user name a valid, unexpired ticket for this request names; else None."""
    body, _, mac = ticket.rpartition("|")
    parts = body.split("|")
    if len(parts) != 3 or not hmac.compare_digest(mac, _sign(secret, body)):
        return None
    username, expires, digest = parts
    if not expires.isdigit() or int(expires) < time.time() or digest != _ticket_digest(pairs):
        return None
    return username
