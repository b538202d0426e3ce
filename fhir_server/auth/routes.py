"""OAuth routes of the authorization server (`/auth/...`) and the discovery documents.

Routes stay thin: read the request, hand it to authlib (in a worker thread,
see `auth.server`) or to the account code, record the audit event, shape the
response. Login and consent are server-rendered forms that carry the
authorization request along as hidden fields (see `auth.web` for the ticket
that identifies the user between them).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread
import orjson
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.auth.bridge import StarletteOAuth2Request
from fhir_server.auth.clients import Client
from fhir_server.auth.discovery import openid_configuration, smart_configuration
from fhir_server.auth.records import Subject, scope_for
from fhir_server.auth.roles import role_of
from fhir_server.auth.scopes import plain_words, split_scope
from fhir_server.auth.token_endpoints import describe, find_token, may_introspect
from fhir_server.auth.urls import auth_base
from fhir_server.auth.users import User
from fhir_server.auth.web import (
    NO_STORE,
    client_ip,
    components_of,
    form_forged,
    form_page,
    json_response,
    make_ticket,
    page,
    page_language,
    read_ticket,
    throttled,
)
from fhir_server.fhir.errors import FhirError

_UI_FIELDS = frozenset(
    {"step", "username", "password", "totp", "ticket", "decision", "patient", "csrf"}
)

router = APIRouter(include_in_schema=False)
# Discovery lives under /fhir: included before the FHIR catch-all, the rest after it.
discovery_router = APIRouter(include_in_schema=False)


async def _oauth_request(auth: AuthComponents, request: Request) -> StarletteOAuth2Request:
    """authlib's view of the request, at its public URL (so a TLS-terminating proxy in
    front does not make authlib see plain http)."""
    query = parse_qsl(request.url.query, keep_blank_values=True)
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        data = await request.form()
        form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    public = auth_base(auth.settings) + request.url.path.removeprefix("/auth")
    return StarletteOAuth2Request(request.method, public, request.headers, query, form)


def _reply(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    header_map = dict(headers)
    if "Location" in header_map and status in (301, 302, 303):
        return RedirectResponse(header_map["Location"], status_code=302, headers=NO_STORE)
    header_map.pop("Content-Type", None)
    return json_response(body, status, header_map)


# -- discovery --------------------------------------------------------------------


@discovery_router.get("/fhir/.well-known/smart-configuration")
async def smart_config(request: Request) -> Response:
    return json_response(smart_configuration(components_of(request).settings))


@discovery_router.get("/fhir/.well-known/openid-configuration")
async def openid_config(request: Request) -> Response:
    return json_response(openid_configuration(components_of(request).settings))


@router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    return json_response(components_of(request).tokens.keyring.jwks())


@router.get("/auth/style")
async def style(_request: Request) -> Response:
    return json_response(
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


@router.api_route("/auth/authorize", methods=["GET", "POST"])
async def authorize(request: Request) -> Response:
    auth = components_of(request)
    oreq = await _oauth_request(auth, request)
    data = oreq.payload.data
    pairs = [(k, v) for k, v in oreq.payload._pairs if k not in _UI_FIELDS]
    try:
        grant = await anyio.to_thread.run_sync(auth.server.get_consent_grant, oreq)
    except OAuth2Error as error:
        return _authorize_error(request, auth, oreq, error)
    if not data.get("state"):  # the client's only defence against a forged redirect back
        missing = InvalidRequestError(
            "The state parameter is required.", redirect_uri=grant.redirect_uri
        )
        return _authorize_error(request, auth, oreq, missing)
    launch = None
    if data.get("launch"):
        launch = await auth.store.launch(data["launch"])
        if launch is None or launch["expires_at"] < time.time():
            unknown = InvalidRequestError(
                "The launch value is unknown or expired.", redirect_uri=grant.redirect_uri
            )
            return _authorize_error(request, auth, oreq, unknown)
    form = _Form(request, grant.client, pairs)
    step = data.get("step")
    if step in ("login", "consent") and await form_forged(request, data.get("csrf", "")):
        expired = "This form has expired or did not come from this site; sign in again."
        return form.login(expired, status=403)
    if step == "login":
        if limited := await throttled(auth, request, "login"):
            return limited
        user = await auth.accounts.login(
            data.get("username", ""), data.get("password", ""), data.get("totp")
        )
        await auth.audit.record(
            "login",
            success=user is not None,
            who=data.get("username", "")[:100],
            client_id=grant.client.client_id,
            address=client_ip(request),
        )
        if user is None:
            wrong = "The user name or password is wrong, or the account is locked."
            return form.login(wrong, data.get("username", ""))
        picks_patient = user.role != "patient" and "launch/patient" in split_scope(
            data.get("scope")
        )
        if grant.client.first_party and launch is None and not picks_patient:
            # The clinic's own portal or workspace acts for the user signing in to it: nothing
            # to allow (a staff member asked to pick a patient still sees the consent page).
            subject = _subject(user, None, data)
            result = await anyio.to_thread.run_sync(
                lambda: auth.server.create_authorization_response(oreq, subject, grant)
            )
            return _reply(result)
        return form.consent(user, launch is not None)
    if step == "consent":
        ticket = read_ticket(auth.settings.secret_key, data.get("ticket", ""), pairs)
        user = await auth.accounts.get(ticket.username) if ticket else None
        if ticket is None or user is None:
            return form.login("Please sign in again.")
        if not await auth.store.use_once("consent", ticket.nonce, ticket.expires_at):
            return form.login("This consent form was already used; sign in again.")
        subject = _subject(user, launch, data)
        allow = data.get("decision") == "allow"
        picked = user.role != "patient" and launch is None
        if allow and (subject is None or (picked and not await _patient_exists(request, subject))):
            return form.consent(user, False, error="Enter the id of a known patient.")
        grant_user = subject if allow else None
        result = await anyio.to_thread.run_sync(
            lambda: auth.server.create_authorization_response(oreq, grant_user, grant)
        )
        return _reply(result)
    return form.login(None)


class _Form:
    """The sign-in and consent pages of one authorization request."""

    def __init__(self, request: Request, client: Client, pairs: list[tuple[str, str]]) -> None:
        self.request = request
        self.auth = components_of(request)
        self.client = client
        self.pairs = pairs
        base = auth_base(self.auth.settings)
        lang = page_language(request, dict(pairs).get("ui_locales"))  # carried by the forms
        self.view: dict[str, Any] = {
            "action": f"{base}/authorize",
            "hidden": pairs,
            "client_name": client.name,
            "reset_url": f"{base}/password-reset?{urlencode({'ui_locales': lang})}",
            "lang": lang,
        }

    def login(self, error: str | None, username: str = "", status: int = 200) -> Response:
        return form_page(
            self.request,
            "login.html",
            status,
            title="Sign in",
            error=error,
            username=username,
            **self.view,
        )

    def consent(self, user: User, ehr_launch: bool, error: str | None = None) -> Response:
        asked = split_scope(dict(self.pairs).get("scope"))
        pick = "launch/patient" in asked and not ehr_launch and user.role != "patient"
        preview = Subject(sub=user.username, role=user.role, patient=user.patient_id)
        if pick or ehr_launch:
            preview.patient = preview.patient or "to be chosen"
        allowed = self.client.get_allowed_scope(" ".join(asked)) or ""
        scopes = split_scope(scope_for(preview, allowed))
        return form_page(
            self.request,
            "consent.html",
            title="Allow access?",
            username=user.username,
            scopes=[plain_words(s) for s in scopes],
            ticket=make_ticket(self.auth.settings.secret_key, user.username, self.pairs),
            pick_patient=pick,
            error=error,
            **self.view,
        )


async def _patient_exists(request: Request, subject: Subject) -> bool:
    """A patient picked by a practitioner on the consent page must exist."""
    if subject.patient is None:
        return True
    found = await request.app.state.services.store.current("Patient", subject.patient)
    return found is not None and not found.deleted


def _subject(user: User, launch: dict[str, Any] | None, data: dict[str, str]) -> Subject | None:
    """Who the token will act for; None when a practitioner still has to pick a patient."""
    patient = None
    if user.role == "patient":
        patient = user.patient_id  # a patient acts for themself, whatever the launch says
    elif launch is not None:
        patient = launch["patient"]
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
    request: Request, auth: AuthComponents, oreq: StarletteOAuth2Request, error: OAuth2Error
) -> Response:
    if error.redirect_uri:
        error.state = oreq.payload.data.get("state")
        return _reply(auth.server.handle_error_response(oreq, error))
    # No trustworthy redirect_uri (unknown client or unregistered URI): never redirect.
    return page(
        request,
        "error.html",
        status=400,
        title="This sign-in link is not valid",
        message=error.get_error_description(),
    )


# -- token, introspection, revocation --------------------------------------------------------


@router.post("/auth/token")
async def token(request: Request) -> Response:
    auth = components_of(request)
    if limited := await throttled(auth, request, "token"):
        return limited
    oreq = await _oauth_request(auth, request)
    await auth.tokens.reload_keys_if_stale()
    await auth.housekeeping()
    result = await anyio.to_thread.run_sync(auth.server.create_token_response, oreq)
    client_id = getattr(oreq.client, "client_id", None) or oreq.form.get("client_id")
    if result[0] == 200:
        event = "token-refreshed" if oreq.payload.grant_type == "refresh_token" else "token-issued"
        who = getattr(oreq.user, "sub", None) if oreq.user else None
        await auth.audit.record(event, success=True, who=who, client_id=client_id)
    else:
        # Refusals include replayed codes and reused refresh tokens (their family is revoked):
        # the OAuth error and its description are recorded, never the token or code itself.
        error = result[1] if isinstance(result[1], dict) else {}
        detail = f"{error.get('error', 'refused')}: {error.get('error_description', '')}"
        await auth.audit.record(
            "token-refused", success=False, who=None, client_id=client_id, detail=detail[:200]
        )
    return _reply(result)


@router.post("/auth/introspect")
async def introspect(request: Request) -> Response:
    auth = components_of(request)
    oreq = await _oauth_request(auth, request)
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        try:
            caller = await auth.tokens.verify(bearer[7:].strip())
        except FhirError:
            return json_response(
                {"error": "invalid_token"},
                401,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        text = oreq.form.get("token")
        if not text:
            return json_response({"error": "invalid_request"}, 400)
        record = await anyio.to_thread.run_sync(
            find_token, auth.server, text, oreq.form.get("token_type_hint")
        )
        caller_id = str(caller.get("client_id", ""))
        if not may_introspect(await auth.clients.get(caller_id), caller_id, record):
            record = None  # answered exactly as an unknown token
        return json_response(describe(record, auth.settings), headers=NO_STORE)
    result = await anyio.to_thread.run_sync(
        auth.server.create_endpoint_response, "introspection", oreq
    )
    return _reply(result)


@router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    auth = components_of(request)
    oreq = await _oauth_request(auth, request)
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
    """An EHR (system token) or a clinic user (practitioner, front desk, admin) opens an app
    for a patient."""
    auth = components_of(request)
    try:
        ctx = await auth.tokens.authenticate(request.headers.get("authorization"))
    except FhirError as error:
        return json_response({"error": "invalid_token"}, 401, error.headers)
    is_system = any(s.context == "system" for s in ctx.scopes.resources)
    if not is_system and role_of(ctx) not in ("practitioner", "frontdesk", "admin"):
        return json_response({"error": "insufficient_scope"}, 403)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            bad = {"error": "invalid_request", "error_description": "The body is not JSON."}
            return json_response(bad, 400)
    else:
        body = dict((await request.form()).items())
    patient = str(body.get("patient", "")) if isinstance(body, dict) else ""
    found = await request.app.state.services.store.current("Patient", patient) if patient else None
    if found is None or found.deleted:
        return json_response(
            {"error": "invalid_request", "error_description": "Unknown patient."}, 400
        )
    launch = await auth.launches.create(patient, ctx.sub)
    return json_response({"launch": launch}, headers=NO_STORE)
