"""HTTP routes of the authorization server (`/auth/...`) and the discovery documents.

Routes stay thin: read the request, hand it to authlib (in a worker thread,
see `auth.server`) or to the account code, record the audit event, shape the
response. Login and consent are server-rendered forms that carry the
authorization request along as hidden fields; between them the user is
identified by a short-lived HMAC-signed ticket bound to that exact request, so
no server-side session is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
import orjson
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.discovery import openid_configuration, smart_configuration
from fhir_server.auth.scopes import plain_words, split_scope
from fhir_server.auth.server import StarletteOAuth2Request, Subject, auth_base, describe, find_token
from fhir_server.auth.users import AccountError, User
from fhir_server.fhir.errors import FhirError

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_UI_FIELDS = frozenset({"step", "username", "password", "totp", "ticket", "decision", "patient"})
_TICKET_SECONDS = 600
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter(include_in_schema=False)


def _auth(request: Request) -> AuthComponents:
    auth: AuthComponents | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise HTTPException(status_code=404)  # authorization is turned off
    return auth


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status, headers=_NO_STORE)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _throttled(auth: AuthComponents, request: Request, endpoint: str) -> Response | None:
    """A 429 answer when this address made too many requests to `endpoint` this minute."""
    window = int(time.time() // 60)
    count = await auth.store.hit(f"{endpoint}|{_client_ip(request)}", window)
    if count > auth.settings.rate_limit_per_minute:
        body = {"error": "slow_down", "error_description": "Too many requests; wait a minute."}
        return _json(body, 429, {"Retry-After": "60"})
    return None


async def _oauth_request(request: Request) -> StarletteOAuth2Request:
    query = parse_qsl(request.url.query, keep_blank_values=True)
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        data = await request.form()
        form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    return StarletteOAuth2Request(request.method, str(request.url), request.headers, query, form)


def _reply(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    header_map = dict(headers)
    if "Location" in header_map and status in (301, 302, 303):
        return RedirectResponse(header_map["Location"], status_code=302, headers=_NO_STORE)
    header_map.pop("Content-Type", None)
    return _json(body, status, header_map)


# -- discovery --------------------------------------------------------------------


@router.get("/fhir/.well-known/smart-configuration")
async def smart_config(request: Request) -> Response:
    return _json(smart_configuration(_auth(request).settings))


@router.get("/fhir/.well-known/openid-configuration")
async def openid_config(request: Request) -> Response:
    return _json(openid_configuration(_auth(request).settings))


@router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    return _json(_auth(request).tokens.keyring.jwks())


@router.get("/auth/style")
async def style(_request: Request) -> Response:
    return _json(
        {
            "color_background": "#f6f8fa",
            "color_error": "#a51d2d",
            "color_highlight": "#1a5fb4",
            "color_modal_backdrop": "",
            "color_success": "#26a269",
            "color_text": "#1f2328",
            "dim_border_radius": "6px",
            "dim_font_size": "16px",
            "dim_spacing_size": "16px",
            "font_family_body": "system-ui, sans-serif",
            "font_family_heading": "system-ui, sans-serif",
        }
    )


# -- authorization endpoint ---------------------------------------------------------------


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


@router.api_route("/auth/authorize", methods=["GET", "POST"])
async def authorize(request: Request) -> Response:
    auth = _auth(request)
    oreq = await _oauth_request(request)
    data = oreq.payload.data
    pairs = [(k, v) for k, v in oreq.payload._pairs if k not in _UI_FIELDS]
    try:
        grant = await anyio.to_thread.run_sync(auth.server.get_consent_grant, oreq)
    except OAuth2Error as error:
        return _authorize_error(auth, oreq, error)
    launch = None
    if data.get("launch"):
        launch = await auth.store.launch(data["launch"])
        if launch is None or launch["expires_at"] < time.time():
            unknown = InvalidRequestError(
                "The launch value is unknown or expired.", redirect_uri=grant.redirect_uri
            )
            return _authorize_error(auth, oreq, unknown)
    client = grant.client
    view = {
        "action": f"{auth_base(auth.settings)}/authorize",
        "hidden": pairs,
        "client_name": client.name,
        "reset_url": f"{auth_base(auth.settings)}/password-reset",
    }
    step = data.get("step")
    if step == "login":
        if limited := await _throttled(auth, request, "login"):
            return limited
        user = await auth.accounts.login(
            data.get("username", ""), data.get("password", ""), data.get("totp")
        )
        await auth.audit.record(
            "login",
            success=user is not None,
            who=data.get("username", "")[:100],
            client_id=client.client_id,
            address=_client_ip(request),
        )
        if user is None:
            return _page(
                "login.html",
                title="Sign in",
                error="The user name or password is wrong, or the account is locked.",
                username=data.get("username", ""),
                **view,
            )
        return _consent_page(auth, user, pairs, view, launch is not None)
    if step == "consent":
        username = read_ticket(auth.settings.secret_key, data.get("ticket", ""), pairs)
        user = await auth.accounts.get(username) if username else None
        if user is None:
            return _page(
                "login.html", title="Sign in", error="Please sign in again.", username="", **view
            )
        subject = _subject(user, launch, data)
        if data.get("decision") == "allow" and subject is None:
            return _consent_page(auth, user, pairs, view, False, error="Enter the patient id.")
        grant_user = subject if data.get("decision") == "allow" else None
        result = await anyio.to_thread.run_sync(
            lambda: auth.server.create_authorization_response(oreq, grant_user, grant)
        )
        return _reply(result)
    return _page("login.html", title="Sign in", error=None, username="", **view)


def _consent_page(
    auth: AuthComponents,
    user: User,
    pairs: list[tuple[str, str]],
    view: dict[str, Any],
    ehr_launch: bool,
    error: str | None = None,
) -> Response:
    scopes = split_scope(dict(pairs).get("scope"))
    pick = "launch/patient" in scopes and not ehr_launch and user.patient_id is None
    return _page(
        "consent.html",
        title="Allow access?",
        username=user.username,
        scopes=[plain_words(s) for s in scopes],
        ticket=make_ticket(auth.settings.secret_key, user.username, pairs),
        pick_patient=pick,
        error=error,
        **view,
    )


def _subject(user: User, launch: dict[str, Any] | None, data: dict[str, str]) -> Subject | None:
    """Who the token will act for; None when a practitioner still has to pick a patient."""
    patient = None
    if launch is not None:
        patient = launch["patient"]
    elif user.patient_id:
        patient = user.patient_id
    elif "launch/patient" in split_scope(data.get("scope")):
        patient = data.get("patient", "").strip() or None
        if patient is None:
            return None
    return Subject(
        sub=user.username,
        role=user.role,
        fhir_user=user.fhir_user,
        patient=patient,
        ehr_launch=launch is not None,
        nonce=data.get("nonce"),
    )


def _authorize_error(
    auth: AuthComponents, oreq: StarletteOAuth2Request, error: OAuth2Error
) -> Response:
    if error.redirect_uri:
        error.state = oreq.payload.data.get("state")
        return _reply(auth.server.handle_error_response(oreq, error))
    # No trustworthy redirect_uri (unknown client or unregistered URI): never redirect.
    return _page(
        "error.html",
        status=400,
        title="This sign-in link is not valid",
        message=error.get_error_description(),
    )


# -- token, introspection, revocation --------------------------------------------------------


@router.post("/auth/token")
async def token(request: Request) -> Response:
    auth = _auth(request)
    if limited := await _throttled(auth, request, "token"):
        return limited
    oreq = await _oauth_request(request)
    await auth.tokens.reload_keys_if_stale()
    result = await anyio.to_thread.run_sync(auth.server.create_token_response, oreq)
    if result[0] == 200:
        event = "token-refreshed" if oreq.payload.grant_type == "refresh_token" else "token-issued"
        who = getattr(oreq.user, "sub", None) if oreq.user else None
        await auth.audit.record(
            event, success=True, who=who, client_id=getattr(oreq.client, "client_id", None)
        )
    return _reply(result)


@router.post("/auth/introspect")
async def introspect(request: Request) -> Response:
    auth = _auth(request)
    oreq = await _oauth_request(request)
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        try:
            await auth.tokens.verify(bearer[7:].strip())
        except FhirError:
            return _json(
                {"error": "invalid_token"},
                401,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        text = oreq.form.get("token")
        if not text:
            return _json({"error": "invalid_request"}, 400)
        record = await anyio.to_thread.run_sync(
            find_token, auth.server, text, oreq.form.get("token_type_hint")
        )
        return _json(describe(record, auth.settings), headers=_NO_STORE)
    result = await anyio.to_thread.run_sync(
        auth.server.create_endpoint_response, "introspection", oreq
    )
    return _reply(result)


@router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    auth = _auth(request)
    oreq = await _oauth_request(request)
    result = await anyio.to_thread.run_sync(
        auth.server.create_endpoint_response, "revocation", oreq
    )
    if result[0] == 200:
        await auth.audit.record(
            "token-revoked",
            success=True,
            who=None,
            client_id=getattr(oreq.client, "client_id", None),
        )
    return _reply(result)


# -- EHR launch ---------------------------------------------------------------------------------


@router.post("/auth/launch")
async def create_launch(request: Request) -> Response:
    """An EHR (system token) or a practitioner (user token) opens an app for a patient."""
    auth = _auth(request)
    try:
        ctx = await auth.tokens.authenticate(request.headers.get("authorization"))
    except FhirError as error:
        return _json({"error": "invalid_token"}, 401, error.headers)
    is_system = any(s.context == "system" for s in ctx.scopes.resources)
    if not is_system and not (ctx.fhir_user or "").startswith("Practitioner/"):
        return _json({"error": "insufficient_scope"}, 403)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = orjson.loads(await request.body() or b"{}")
    else:
        body = dict((await request.form()).items())
    patient = str(body.get("patient", "")) if isinstance(body, dict) else ""
    found = await request.app.state.services.store.current("Patient", patient) if patient else None
    if found is None or found.deleted:
        return _json({"error": "invalid_request", "error_description": "Unknown patient."}, 400)
    launch = await auth.launches.create(patient, ctx.sub)
    return _json({"launch": launch}, headers=_NO_STORE)


# -- accounts: self-registration and password reset -----------------------------------------------


@router.get("/auth/register")
async def register_form(request: Request) -> Response:
    auth = _auth(request)
    if not auth.settings.patient_self_registration:
        return _page(
            "message.html", status=404, title="Registration", message="Registration is closed."
        )
    return _page(
        "register.html", title="Create your account", action=str(request.url.path), error=None
    )


@router.post("/auth/register")
async def register(request: Request) -> Response:
    auth = _auth(request)
    if not auth.settings.patient_self_registration:
        return _page(
            "message.html", status=404, title="Registration", message="Registration is closed."
        )
    if limited := await _throttled(auth, request, "login"):
        return limited
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        await auth.registration.register_patient(form)
    except AccountError as error:
        return _page(
            "register.html",
            status=400,
            title="Create your account",
            action=str(request.url.path),
            error=str(error),
        )
    return _page(
        "message.html",
        title="Account created",
        message="Your account is ready; sign in from your app.",
    )


@router.get("/auth/password-reset")
async def reset_form(request: Request) -> Response:
    _auth(request)
    return _page("reset_request.html", title="Reset your password", action=str(request.url.path))


@router.post("/auth/password-reset")
async def reset_request(request: Request) -> Response:
    auth = _auth(request)
    if limited := await _throttled(auth, request, "login"):
        return limited
    email = str((await request.form()).get("email", ""))
    await auth.resets.request(email, f"{auth_base(auth.settings)}/password-reset/confirm")
    return _page(
        "message.html",
        title="Check your e-mail",
        message="If an account has this address, we have sent it a link to choose a new password.",
    )


@router.get("/auth/password-reset/confirm")
async def reset_confirm_form(request: Request) -> Response:
    _auth(request)
    return _page(
        "reset_confirm.html",
        title="Choose a new password",
        action=str(request.url.path),
        token=request.query_params.get("token", ""),
        error=None,
    )


@router.post("/auth/password-reset/confirm")
async def reset_confirm(request: Request) -> Response:
    auth = _auth(request)
    form = await request.form()
    token_value, password = str(form.get("token", "")), str(form.get("password", ""))
    try:
        await auth.resets.confirm(token_value, password)
    except AccountError as error:
        return _page(
            "reset_confirm.html",
            status=400,
            title="Choose a new password",
            action=str(request.url.path),
            token=token_value,
            error=str(error),
        )
    return _page(
        "message.html", title="Password changed", message="Your password is changed; sign in again."
    )
