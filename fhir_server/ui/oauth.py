"""The web UI's side of SMART App Launch: authorization code + PKCE as a confidential client.

The browser is sent to `/auth/authorize` with a fresh `state` and S256
challenge, both kept in its (server-side) session; the callback accepts the
code only with that state, then exchanges it at `/auth/token` in process,
authenticated with the client secret. Tokens stay in the session; the browser
never sees them. Refresh (`online_access`) and revocation work the same way.
The user's role (which clinic workspace pages to offer) comes from RFC 7662
introspection of the UI's own access token, a standard the token response lacks.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from fhir_server.settings import Settings
from fhir_server.ui.client import UiClient, site_root
from fhir_server.ui.session import Tokens


class TokenRefused(Exception):
    """The token endpoint refused the code or refresh token (the user signs in again)."""


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def start(settings: Settings, client: UiClient, lang: str) -> tuple[str, dict[str, str]]:
    """The authorization URL to send the browser to, and what the callback must check."""
    pending = {"state": secrets.token_urlsafe(24), "verifier": secrets.token_urlsafe(48)}
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": client.scope,
        "state": pending["state"],
        "aud": settings.base_url,
        "code_challenge": _challenge(pending["verifier"]),
        "code_challenge_method": "S256",
        "ui_locales": lang,
    }
    return f"{site_root(settings)}/auth/authorize?{urlencode(query)}", pending


def _auth(client: UiClient) -> httpx.BasicAuth:
    return httpx.BasicAuth(client.client_id, client.secret)


async def _token_call(http: httpx.AsyncClient, client: UiClient, form: dict[str, str]) -> Tokens:
    response = await http.post("/auth/token", data=form, auth=_auth(client))
    if response.status_code != 200:
        raise TokenRefused(response.status_code)
    body: dict[str, Any] = response.json()
    return Tokens(
        access_token=body["access_token"],
        expires_at=time.time() + int(body.get("expires_in", 0)),
        refresh_token=body.get("refresh_token"),
        patient=body.get("patient"),
        fhir_user=body.get("fhirUser"),
        role=await _role(http, client, body["access_token"]),
    )


async def _role(http: httpx.AsyncClient, client: UiClient, access_token: str) -> str | None:
    """The role of the user the token acts for (None: the token does not carry one)."""
    response = await http.post("/auth/introspect", data={"token": access_token}, auth=_auth(client))
    if response.status_code != 200:
        return None
    role = response.json().get("role")
    return role if isinstance(role, str) else None


async def exchange(http: httpx.AsyncClient, client: UiClient, code: str, verifier: str) -> Tokens:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": verifier,
    }
    return await _token_call(http, client, form)


async def refresh(http: httpx.AsyncClient, client: UiClient, tokens: Tokens) -> Tokens:
    if not tokens.refresh_token:
        raise TokenRefused(400)
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    fresh = await _token_call(http, client, form)
    # The launch context is not repeated on refresh by every server: keep what we know.
    fresh.patient = fresh.patient or tokens.patient
    fresh.fhir_user = fresh.fhir_user or tokens.fhir_user
    return fresh


async def revoke(http: httpx.AsyncClient, client: UiClient, tokens: Tokens) -> None:
    """End the grant: the refresh token's whole family (its access tokens included)."""
    for value, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, None)):
        if value:
            form = {"token": value} | ({"token_type_hint": hint} if hint else {})
            await http.post("/auth/revoke", data=form, auth=_auth(client))
