"""The web UI's foundation: its two sites' sub-apps, their pages' rendering and route dependencies.

The patient portal (`/portal`) and the clinic workspace (`/clinic`) are built
by `create_site` the same way and differ only in their OAuth client, their
session cookie and their pages; a page module never names its site's address
(`page.url` does).

Every page handler takes one of two dependencies and returns `page.render(...)`:

- `Visitor`: anyone (the start page, signed-out pages);
- `SignedIn`: a signed-in user, with `page.api` (a `PortalApi` on their token);
  anyone else is redirected to sign in, and comes back to the same address.

A handler of a form takes `form: CheckedForm` too: the POST must carry the
session's CSRF token (and, when the browser sends one, this site's Origin), or
the user sees a 403 page. Pages are Jinja2 templates (autoescaped) translated
with gettext (`i18n`); the language is switchable on every page (`?lang=`).
"""

from __future__ import annotations

import hmac
import importlib
import pkgutil
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.settings import Settings
from fhir_server.ui import i18n, oauth
from fhir_server.ui.client import UiClient, site_root
from fhir_server.ui.fhir_api import (
    InProcessApi,
    PortalApi,
    PortalApiError,
    SignInRequired,
    in_process_client,
)
from fhir_server.ui.session import Session, SessionStore, SessionsUnavailable

_HERE = Path(__file__).parent
# The idle warning shows this long before the session ends (or at half its life when shorter).
IDLE_WARNING_SECONDS = 120
# Refresh the access token when it has less than this left, so no page call meets a 401.
_REFRESH_MARGIN = 60

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_PAGE_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_NO_STORE = {"Cache-Control": "no-store"}


@cache
def environment(lang: str) -> Environment:
    """The templates in one language (autoescaped; an unknown variable is an error)."""
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        auto_reload=False,  # templates are part of the installed package
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass(frozen=True)
class FieldError:
    """One error of a form: `field` is the id of the input it links to (None: no field)."""

    message: str
    field: str | None = None


class SignInNeeded(Exception):
    """Raised by `SignedIn` for a visitor who is not (or no longer) signed in."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired


class CsrfRefused(Exception):
    """A form POST without this session's CSRF token, or from another site's page."""


class RoleRefused(Exception):
    """The signed-in user's role may not open this page (a 403 page; the API would refuse
    its data anyway, this only says so before any call)."""


def safe_next(value: str | None, prefix: str) -> str:
    """A return address after sign-in: only a path inside the site at `prefix` (no open
    redirect)."""
    if value and "\\" not in value:
        parts = urlsplit(value)
        inside = parts.path == prefix or parts.path.startswith(f"{prefix}/")
        if not parts.scheme and not parts.netloc and inside:
            return value
    return f"{prefix}/"


def _language(request: Request) -> str:
    return i18n.choose(
        request.query_params.get("lang"),
        request.cookies.get(i18n.LANG_COOKIE),
        request.headers.get("accept-language", ""),
    )


@dataclass
class Page:
    """What a page handler knows about the visit: settings, language, session, rendering."""

    request: Request
    settings: Settings
    lang: str
    session: Session | None
    api: PortalApi | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Values every template of this page gets, set by a part's own dependency (e.g. the
    # patient the front desk books for, shown above the portal's booking questions).
    shown: dict[str, Any] = field(default_factory=dict)

    def _(self, message: str) -> str:
        """The message in the page's language."""
        return i18n.translations(self.lang).gettext(message)

    @property
    def prefix(self) -> str:
        """Where this page's site is mounted (`/portal` or `/clinic`)."""
        return portal_of(self.request).client.path

    def url(self, path: str, **query: str) -> str:
        """The address of a page of this site (`path` from the site's root, e.g. `/book`)."""
        return f"{self.prefix}{path}" + (f"?{urlencode(query)}" if query else "")

    def safe_next(self, value: str | None) -> str:
        return safe_next(value, self.prefix)

    @property
    def role(self) -> str | None:
        """The signed-in user's role (patient, practitioner, frontdesk, admin), else None."""
        tokens = self.session.tokens if self.session is not None else None
        return tokens.role if tokens is not None else None

    def _language_links(self) -> list[tuple[str, str, str]]:
        """(code, name, href) of the other languages: this address with `lang=` set."""
        query = [(k, v) for k, v in self.request.query_params.multi_items() if k != "lang"]
        links = []
        for code, name in i18n.LANGUAGES.items():
            if code != self.lang:
                href = f"{self.request.url.path}?{urlencode([*query, ('lang', code)])}"
                links.append((code, name, href))
        return links

    def render(
        self,
        template: str,
        *,
        title: str,
        status: int = 200,
        errors: list[FieldError] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """The page as HTML; `title` is already translated; errors show in the summary and
        make the `<title>` start with "Error: "."""
        timeout = self.settings.portal_idle_timeout
        site = portal_of(self.request)
        context = {
            "lang": self.lang,
            "title": title,
            "errors": errors or [],
            "language_links": self._language_links(),
            "signed_in": self.session is not None and self.session.signed_in,
            "csrf": self.session.csrf if self.session else "",
            "here": str(self.request.url.path),
            "url": self.url,
            "site_name": self._(site.name),
            "sections": [
                (self.url(section.path), self._(section.name))
                for section in site.sections
                if self.role in section.roles
            ],
            "static": lambda name: f"{self.prefix}/static/{name}",
            "idle_timeout": site.sessions.remaining(self.session)
            if self.session is not None
            else timeout,
            "idle_warning": min(IDLE_WARNING_SECONDS, timeout // 2),
            **self.shown,
            **values,
        }
        html = environment(self.lang).get_template(template).render(context)
        headers = {**_NO_STORE, **self.extra_headers}
        if self.api is not None:
            headers["X-Portal-Fhir-Calls"] = str(self.api.calls)
        response = HTMLResponse(html, status_code=status, headers=headers)
        self.remember_language(response)
        return response

    def remember_language(self, response: Response) -> None:
        """A `?lang=` choice sticks (cookie) for the next pages."""
        if i18n.supported(self.request.query_params.get("lang")):
            response.set_cookie(
                i18n.LANG_COOKIE,
                self.lang,
                max_age=365 * 24 * 3600,
                path=self.prefix,
                secure=self.settings.environment != "development",
                httponly=True,
                samesite="lax",
            )

    def redirect(self, location: str) -> RedirectResponse:
        """See other (303): after a POST the browser GETs `location`."""
        response = RedirectResponse(location, status_code=303, headers=_NO_STORE)
        self.remember_language(response)
        return response


@dataclass
class SignedInPage(Page):
    """A page of a signed-in user: `api` and `session` are always there."""

    api: PortalApi = field(kw_only=True)
    session: Session = field(kw_only=True)


@dataclass(frozen=True)
class Section:
    """A part of a site shown in its header menu to the roles that may open it; `name` is
    English, translated on each page."""

    path: str
    name: str
    roles: frozenset[str]


@dataclass
class Portal:
    """One site's shared parts (the patient portal's or the clinic workspace's), kept on its
    sub-app's state. `name` is its English name, translated on each page."""

    settings: Settings
    sessions: SessionStore
    api_app: ASGIApp
    client: UiClient
    name: str
    sections: list[Section] = field(default_factory=list)

    def http(self, request: Request) -> httpx.AsyncClient:
        """An HTTP client to the app, for the OAuth calls (token, refresh, revoke)."""
        return in_process_client(self.api_app, self.settings, _address(request))

    def api(self, request: Request) -> InProcessApi:
        """The FHIR API in process, for the pages' calls."""
        return InProcessApi(self.api_app, self.settings, _address(request))


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def portal_of(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


async def current_session(request: Request) -> Session | None:
    """The session the cookie names, loaded once per request."""
    if not hasattr(request.state, "session"):
        sessions = portal_of(request).sessions
        request.state.session = await sessions.load(request.cookies.get(sessions.cookie, ""))
    session: Session | None = request.state.session
    return session


async def visitor(request: Request) -> Page:
    session = await current_session(request)
    return Page(request, portal_of(request).settings, _language(request), session)


async def signed_in(request: Request) -> SignedInPage:
    """The page of a signed-in user, with a fresh access token; else sign in first."""
    portal = portal_of(request)
    session = await current_session(request)
    if session is None or session.tokens is None:
        raise SignInNeeded(expired=bool(request.cookies.get(portal.sessions.cookie)))
    if session.tokens.expires_at - _REFRESH_MARGIN < time.time():
        try:
            session.tokens = await oauth.refresh(
                portal.http(request), portal.client, session.tokens
            )
        except oauth.TokenRefused as refused:
            await portal.sessions.delete(session)
            raise SignInNeeded(expired=True) from refused
        await portal.sessions.save(session)
    else:
        await portal.sessions.touch(session)  # the idle clock restarts with every page
    api = PortalApi(portal.api(request), session.tokens.access_token, session.tokens.patient)
    return SignedInPage(request, portal.settings, _language(request), session=session, api=api)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token matches the session's and its Origin is ours."""
    origin = request.headers.get("origin")
    settings = portal_of(request).settings
    if origin is not None and origin != _origin(site_root(settings)):
        raise CsrfRefused
    form = await request.form()
    session = await current_session(request)
    sent = form.get("csrf")
    if session is None or not isinstance(sent, str):
        raise CsrfRefused
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise CsrfRefused
    return form


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def requiring(*roles: str) -> Any:
    """A dependency: the page of a signed-in user whose role is one of `roles`, else 403."""

    async def page_for_role(request: Request) -> SignedInPage:
        page = await signed_in(request)
        if page.role not in roles:
            raise RoleRefused
        return page

    return Depends(page_for_role)


Visitor = Annotated[Page, Depends(visitor)]
SignedIn = Annotated[SignedInPage, Depends(signed_in)]
CheckedForm = Annotated[FormData, Depends(checked_form)]


# -- errors as pages -------------------------------------------------------------------


async def _page_for(request: Request) -> Page:
    session = getattr(request.state, "session", None)
    return Page(request, portal_of(request).settings, _language(request), session)


async def _sign_in_needed(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInNeeded)
    page = await _page_for(request)
    target = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = f"{page.prefix}/"
    where = "/signed-out" if error.expired else "/sign-in"
    query = {"next": target} | ({"reason": "idle"} if error.expired else {})
    return page.redirect(page.url(where, **query))


async def _csrf_refused(request: Request, _error: Exception) -> Response:
    page = await _page_for(request)
    if page.session is None and request.url.path == f"{page.prefix}/sign-out":
        # Signing out of a session that already ended (an old tab): nothing to protect.
        return page.redirect(page.url("/signed-out"))
    return page.render(
        "error.html",
        title=page._("This form has expired"),
        status=403,
        message=page._(
            "The form you sent had expired or did not come from this site, so nothing was "
            "changed. Go back, reload the page and try again."
        ),
    )


async def _role_refused(request: Request, _error: Exception) -> Response:
    page = await _page_for(request)
    return page.render(
        "error.html",
        title=page._("You cannot see this page"),
        status=403,
        message=page._(
            "Your account cannot open this page. Ask the clinic's administrator if you need it."
        ),
    )


async def _sessions_down(request: Request, _error: Exception) -> Response:
    request.state.session = None
    page = await _page_for(request)
    return page.render(
        "error.html",
        title=page._("Sorry, the portal is not available"),
        status=503,
        message=page._("Please try again in a few minutes."),
    )


async def _api_error(request: Request, error: Exception) -> Response:
    """A FHIR API error a page did not handle itself."""
    assert isinstance(error, PortalApiError)
    if isinstance(error, SignInRequired):  # the token was revoked (or the keys changed)
        session = getattr(request.state, "session", None)
        if session is not None:
            await portal_of(request).sessions.delete(session)
        request.state.session = None
        return await _sign_in_needed(request, SignInNeeded(expired=False))
    page = await _page_for(request)
    titles = {403: page._("You cannot see this page"), 404: page._("Page not found")}
    status = error.status if error.status in titles else 500
    title = titles.get(status, page._("Sorry, there is a problem with the service"))
    return page.render("error.html", title=title, status=status, message=None)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    page = await _page_for(request)
    if error.status_code == 404:
        message = page._("If you typed the web address, check it is correct.")
        return page.render(
            "error.html", title=page._("Page not found"), status=404, message=message
        )
    title = page._("Sorry, there is a problem with the service")
    return page.render("error.html", title=title, status=error.status_code, message=None)


async def _bad_request(request: Request, _error: Exception) -> Response:
    page = await _page_for(request)
    message = page._("The address or form was not complete. Go back and try again.")
    return page.render(
        "error.html", title=page._("Something is missing"), status=400, message=message
    )


class _PageHeaders:
    """Security headers of every portal answer: a CSP without inline script or style,
    no framing at all, and no referrer sent to other sites."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_PAGE_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_site(
    settings: Settings,
    api_app: ASGIApp,
    sessions: SessionStore,
    client: UiClient,
    name: str,
    pages: list[APIRouter],
    sections: list[Section] | None = None,
) -> FastAPI:
    """One site of the UI, to mount at `client.path`; `api_app` serves the FHIR and auth
    APIs; `pages` are its page modules' routers (sign-in and sign-out come with every site)."""
    # The sign-in pages take their dependencies from this module: imported when a site is built.
    from fhir_server.ui import sign_in

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = Portal(settings, sessions, api_app, client, name, sections or [])
    app.add_middleware(_PageHeaders)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.include_router(sign_in.router)
    for router in pages:
        app.include_router(router)
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(RoleRefused, _role_refused)
    app.add_exception_handler(SessionsUnavailable, _sessions_down)
    app.add_exception_handler(PortalApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    return app


def routers_of(package: ModuleType) -> list[APIRouter]:
    """The `router` of every module of a pages package, in name order: a new part of a site
    adds its own file and touches no list."""
    found = []
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        router = getattr(loaded, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


async def landing(request: Request) -> Response:
    """The server's root page `/`: where the portal, the clinic workspace and the API are."""
    settings: Settings = request.app.state.services.settings
    lang = _language(request)
    html = (
        environment(lang)
        .get_template("landing.html")
        .render(
            lang=lang,
            sites=settings.auth_enabled,
            api=f"{settings.base_url}/metadata",
            static=lambda name: f"/portal/static/{name}",
        )
    )
    headers = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY"}
    return HTMLResponse(html, headers=headers)
