"""Driving the patient portal in tests: an app with auth on, a patient, a browser-like sign-in.

`signed_in_client` walks the whole way a browser does: the portal's sign-in
redirect, the authorization server's sign-in form (no consent page: the portal is the
clinic's own client), the callback.
Portal page tests (base, account, booking) share it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from httpx import Response

from fhir_server.settings import Settings
from fhir_server.ui.session import SessionStore
from tests.integration.auth_helpers import (
    PASSWORD,
    add_user,
    auth_app,
    new_patient,
)

PORTAL = "http://testserver/portal"
CLINIC = "http://testserver/clinic"


def portal_app(settings_factory: Callable[..., Settings], **overrides: Any) -> Iterator[TestClient]:
    """The whole server with authorization on (the portal is mounted only then)."""
    overrides.setdefault("rate_limit_per_minute", 1000)
    yield from auth_app(settings_factory, **overrides)


def add_patient_login(client: TestClient, username: str, family: str = "Portal") -> str:
    """A Patient and the login that acts for it; the Patient's id."""
    patient_id = new_patient(client, family)
    add_user(client, username, "patient", f"Patient/{patient_id}", email=f"{username}@example.org")
    return patient_id


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the first form of a page (name -> value)."""
    pairs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    return {name: value.replace("&amp;", "&") for name, value in pairs}


def authorize_and_consent(client: TestClient, authorize_url: str, username: str) -> str:
    """On the authorization server: sign in; the callback URL it redirects to. The portal is
    the clinic's own client, so a patient is sent straight back, with no consent page."""
    login = client.get(authorize_url)
    assert login.status_code == 200, login.text[:300]
    fields = form_fields(login.text)
    done = client.post(
        "http://testserver/auth/authorize",
        data=fields | {"step": "login", "username": username, "password": PASSWORD},
        follow_redirects=False,
    )
    assert done.status_code == 302, done.text[:300]
    return str(done.headers["location"])


def start_sign_in(client: TestClient, next_path: str | None = None, site: str = PORTAL) -> str:
    """Open a site's sign-in (the portal's unless `site` is `CLINIC`); the authorization URL
    it sends the browser to."""
    params = {"next": next_path} if next_path else {}
    started = client.get(f"{site}/sign-in", params=params, follow_redirects=False)
    assert started.status_code == 303, started.text[:300]
    return str(started.headers["location"])


def sign_in(
    client: TestClient, username: str, next_path: str | None = None, site: str = PORTAL
) -> Response:
    """The full sign-in to a site; the callback's answer (a redirect to `next_path`)."""
    callback = authorize_and_consent(client, start_sign_in(client, next_path, site), username)
    assert callback.startswith(f"{site}/callback?"), callback
    return client.get(callback, follow_redirects=False)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def portal_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def portal_sessions(client: TestClient, path: str = "/portal") -> SessionStore:
    """The session store of the site mounted at `path` (to look at or age a session)."""
    for route in client.app.routes:  # type: ignore[attr-defined]
        if getattr(route, "path", None) == path:
            sessions: SessionStore = route.app.state.portal.sessions
            return sessions
    raise AssertionError(f"no site is mounted at {path}")
