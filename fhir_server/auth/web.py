"""What the authorization server's HTML and JSON routes share.

Pages are Jinja2 templates with autoescaping. Between a sign-in form and the
next form, the user is identified by a short-lived HMAC-signed ticket bound to
the exact request it was issued for, so no server-side session is needed; each
ticket carries a random nonce so a form that must be used once (consent) can
claim it.

Forms are protected against cross-site posting twice: the form carries a
random CSRF token that must equal the one in a cookie set with the page
(double submit; another site can neither read the cookie nor set it), and a
POST whose `Origin` is not this server's is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from fhir_server.auth import language
from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.urls import auth_base

_TEMPLATE_DIR = Path(__file__).parent / "templates"
_TICKET_SECONDS = 600
CSRF_COOKIE = "fhir_auth_csrf"
_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
STYLESHEET = Path(__file__).parent / "static" / "auth.css"
# Sign-in and consent pages must not be framed by another site (clickjacking), and run no
# script and take no style but this server's own stylesheet: a tag slipped into a page could
# neither run nor restyle the password form. No inline style or script ('unsafe-inline').
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


def components_of(request: Request) -> AuthComponents:
    auth: AuthComponents | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise HTTPException(status_code=404)  # authorization is turned off
    return auth


@cache
def _templates(lang: str) -> Environment:
    """The pages in one language: `_()` translates, `say()` too, marking text the
    catalogue lacks as English (`lang="en"`) for screen readers."""
    environment = Environment(
        loader=FileSystemLoader(_TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    catalogue = language.translations(lang)
    environment.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]

    def say(text: str) -> Markup:
        said = catalogue.gettext(text)
        if lang != language.DEFAULT and said == text:
            return Markup('<span lang="{}">{}</span>').format(language.DEFAULT, text)
        return Markup.escape(said)

    environment.globals.update(say=say, lang=lang)
    return environment


def page_language(request: Request, ui_locales: str | None = None) -> str:
    """The language of the page answering `request` (see `auth.language`)."""
    return language.choose(
        ui_locales or request.query_params.get("ui_locales"),
        request.cookies.get("lang"),
        request.headers.get("accept-language", ""),
    )


def here(request: Request) -> str:
    """This page's path and query: a form posting back here keeps its `ui_locales`."""
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def _switch(request: Request, lang: str) -> tuple[str, str, str] | None:
    """(URL, language, its name) of the link to this page in the other language; only for
    a page reached with GET (a POST's answer cannot be asked for again)."""
    if request.method != "GET":
        return None
    other = next(code for code in language.LANGUAGES if code != lang)
    url = request.url.include_query_params(ui_locales=other)
    return f"{url.path}?{url.query}", other, language.LANGUAGES[other]


def page(
    request: Request, name: str, status: int = 200, lang: str | None = None, **values: Any
) -> HTMLResponse:
    lang = lang or page_language(request)
    html = _templates(lang).get_template(name).render(switch=_switch(request, lang), **values)
    return HTMLResponse(html, status_code=status, headers={**NO_STORE, **_PAGE_HEADERS})


def form_page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A page with a form: its CSRF token in a hidden field and in the matching cookie."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if not _CSRF_SHAPE.fullmatch(token):
        token = secrets.token_urlsafe(32)
    response = page(request, name, status, csrf=token, **values)
    settings = components_of(request).settings
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=_TICKET_SECONDS * 6,
        path="/auth",
        secure=auth_base(settings).startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


async def form_forged(request: Request, sent: str) -> bool:
    """Whether a form POST may come from another site: an `Origin` that is not ours, or a
    CSRF field that does not match the cookie set with the form."""
    origin = request.headers.get("origin")
    if origin is not None and origin != _origin(auth_base(components_of(request).settings)):
        return True
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return not (cookie and sent and hmac.compare_digest(cookie.encode(), sent.encode()))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


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


@dataclass(frozen=True)
class Ticket:
    username: str
    nonce: str
    expires_at: int


def make_ticket(secret: str, username: str, pairs: list[tuple[str, str]]) -> str:
    expires = int(time.time()) + _TICKET_SECONDS
    body = f"{username}|{expires}|{_ticket_digest(pairs)}|{secrets.token_hex(16)}"
    return f"{body}|{_sign(secret, body)}"


def read_ticket(secret: str, ticket: str, pairs: list[tuple[str, str]]) -> Ticket | None:
    """What a valid, unexpired ticket for this request says; else None."""
    body, _, mac = ticket.rpartition("|")
    parts = body.split("|")
    if len(parts) != 4 or not hmac.compare_digest(mac, _sign(secret, body)):
        return None
    username, expires, digest, nonce = parts
    if not expires.isdigit() or int(expires) < time.time() or digest != _ticket_digest(pairs):
        return None
    return Ticket(username, nonce, int(expires))
