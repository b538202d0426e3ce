"""The portal's side of SMART App Launch: authorization code + PKCE as a confidential client.

The browser is sent to `/auth/authorize` with a fresh `state` and S256
challenge, both kept in its (server-side) session; the callback accepts the
code only with that state, then exchanges it at `/auth/token` in process,
authenticated with the client secret. Tokens stay in the session; the browser
never sees them. Refresh (`online_access`) and revocation work the same way.
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
from fhir_server.ui.client import PortalClient, portal_client, site_root
from fhir_server.ui.session import Tokens


class TokenRefused(Exception):
    """The token endpoint refused the code or refresh token (the user signs in again)."""


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def start(settings: Settings, lang: str) -> tuple[str, dict[str, str]]:
    """The authorization URL to send the browser to, and what the callback must check."""
    client = portal_client(settings)
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


def _auth(client: PortalClient) -> httpx.BasicAuth:
    return httpx.BasicAuth(client.client_id, client.secret)


async def _token_call(http: httpx.AsyncClient, settings: Settings, form: dict[str, str]) -> Tokens:
    client = portal_client(settings)
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
    )


async def exchange(http: httpx.AsyncClient, settings: Settings, code: str, verifier: str) -> Tokens:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": portal_client(settings).redirect_uri,
        "code_verifier": verifier,
    }
    return await _token_call(http, settings, form)


async def refresh(http: httpx.AsyncClient, settings: Settings, tokens: Tokens) -> Tokens:
    if not tokens.refresh_token:
        raise TokenRefused(400)
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    fresh = await _token_call(http, settings, form)
    # The launch context is not repeated on refresh by every server: keep what we know.
    fresh.patient = fresh.patient or tokens.patient
    fresh.fhir_user = fresh.fhir_user or tokens.fhir_user
    return fresh


async def revoke(http: httpx.AsyncClient, settings: Settings, tokens: Tokens) -> None:
    """End the grant: the refresh token's whole family (its access tokens included)."""
    client = portal_client(settings)
    for value, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, None)):
        if value:
            form = {"token": value} | ({"token_type_hint": hint} if hint else {})
            await http.post("/auth/revoke", data=form, auth=_auth(client))
