"""Shared helpers for the SMART authorization tests: an app with auth on, users, clients, flows."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.audit.relay import AuditRelay
from fhir_server.auth.bootstrap import AuthComponents
from fhir_server.settings import Settings
from fhir_server.store.connection import open_database
from fhir_server.store.resources import ResourceStore, body_of

# authlib refuses plain http outside localhost; the TestClient talks http://testserver.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

BASE = "http://testserver/fhir"
AUTH = "http://testserver/auth"
REDIRECT = "http://app.example/callback"
PASSWORD = "blue-harbour-lantern-42"


def auth_app(settings_factory: Callable[..., Settings], **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings_factory(auth_enabled=True, **overrides))) as client:
        yield client


def system_app(settings_factory: Callable[..., Settings]) -> Iterator[TestClient]:
    """An app with auth on whose client sends a backend service's `system/*.cruds` token."""
    for app_client in auth_app(settings_factory):
        app_client.headers["Authorization"] = f"Bearer {mint(app_client, 'system/*.cruds')}"
        yield app_client


def components(client: TestClient) -> AuthComponents:
    auth: AuthComponents = client.app.state.auth  # type: ignore[attr-defined]
    return auth


def call(client: TestClient, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one of the app's coroutines on the app's own event loop."""
    assert client.portal is not None

    async def run() -> Any:
        return await fn(*args, **kwargs)

    return client.portal.call(run)


def create(client: TestClient, resource: dict[str, Any]) -> str:
    """Store a resource directly (setup, not under test); its id."""
    version = call(client, client.app.state.services.store.create, resource)  # type: ignore[attr-defined]
    return str(version.id)


def new_patient(client: TestClient, family: str) -> str:
    return create(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": family, "given": ["Test"]}],
            "gender": "other",
        },
    )


def add_user(
    client: TestClient, username: str, role: str, fhir_user: str | None, **kw: Any
) -> None:
    call(client, components(client).accounts.add, username, PASSWORD, role, fhir_user, **kw)


def add_client(client: TestClient, client_id: str, kind: str, scope: str, **kw: Any) -> None:
    if kind != "backend":
        kw.setdefault("redirect_uris", [REDIRECT])
    call(client, components(client).clients.add, client_id, client_id, kind, scope, **kw)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_params(
    client_id: str, scope: str, challenge: str | None, **extra: str
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": secrets.token_hex(8),
        "aud": BASE,
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return params | extra


def ticket_of(html: str) -> str:
    found = re.search(r'name="ticket" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def csrf_of(html: str) -> str:
    """The CSRF token a sign-in or consent form carries (its twin is in a cookie)."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def post_form(client: TestClient, url: str, data: dict[str, str]) -> Any:
    """Open an account page (getting its CSRF cookie, as a browser does) and post its form."""
    opened = client.get(url)
    return client.post(url, data=data | {"csrf": csrf_of(opened.text)})


def login_form(
    client: TestClient, params: dict[str, str], username: str, password: str, **extra: str
) -> Any:
    """Open the sign-in page (as a browser does, getting its CSRF cookie) and post it."""
    login_page = client.get(f"{AUTH}/authorize", params=params)
    assert login_page.status_code == 200, login_page.text[:300]
    form = {**params, "step": "login", "username": username, "password": password, **extra}
    return client.post(f"{AUTH}/authorize", data=form | {"csrf": csrf_of(login_page.text)})


def log_in_and_consent(
    client: TestClient,
    params: dict[str, str],
    username: str,
    *,
    decision: str = "allow",
    patient: str | None = None,
    password: str = PASSWORD,
) -> str:
    """Drive the login and consent forms; the Location the browser is sent to."""
    consent = login_form(client, params, username, password)
    assert consent.status_code == 200 and 'value="allow"' in consent.text, consent.text[:500]
    form = {**params, "step": "consent", "ticket": ticket_of(consent.text), "decision": decision}
    form["csrf"] = csrf_of(consent.text)
    if patient:
        form["patient"] = patient
    done = client.post(f"{AUTH}/authorize", data=form, follow_redirects=False)
    assert done.status_code == 302, done.text[:300]
    return done.headers["location"]


def code_of(location: str, state: str) -> str:
    query = parse_qs(urlsplit(location).query)
    assert query.get("state") == [state], location
    assert "code" in query, location
    return query["code"][0]


def exchange(
    client: TestClient, code: str, client_id: str, verifier: str | None, **extra: Any
) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier is not None:
        data["code_verifier"] = verifier
    if "auth" not in extra:
        data["client_id"] = client_id
    return client.post(f"{AUTH}/token", data=data | extra.pop("data", {}), **extra)


def login_token(
    client: TestClient, client_id: str, username: str, scope: str, aud: str = BASE, **kw: Any
) -> dict[str, Any]:
    """A full authorization-code + PKCE round; the token response."""
    verifier, challenge = pkce()
    params = authorize_params(client_id, scope, challenge, aud=aud)
    location = log_in_and_consent(client, params, username, **kw)
    response = exchange(client, code_of(location, params["state"]), client_id, verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mint(
    client: TestClient,
    scope: str,
    *,
    patient: str | None = None,
    fhir_user: str | None = None,
    lifetime: int | None = None,
    role: str | None = None,
    client_id: str = "test-client",
) -> str:
    """An access token issued and recorded the way the token endpoint does it."""
    auth = components(client)
    grant = {
        "client_id": client_id,
        "sub": "tester",
        "scope": scope,
        "patient": patient,
        "fhir_user": fhir_user,
        "role": role,
        "family": secrets.token_hex(8),
    }
    issued = auth.tokens.access_token(grant, lifetime)
    call(
        client,
        auth.store.save_access,
        {**grant, "_id": issued.jti, "expires_at": issued.expires_at},
    )
    return issued.token


def appointment(*patients: str, status: str = "booked") -> dict[str, Any]:
    actors = [f"Patient/{p}" for p in patients] + ["Practitioner/dr-1"]
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": "2030-01-02T09:00:00Z",
        "end": "2030-01-02T09:30:00Z",
        "participant": [{"actor": {"reference": a}, "status": "accepted"} for a in actors],
    }


def stored_patient(env: dict[str, str], rid: str | None = None) -> str:
    """A Patient written straight to the store a CLI `env` names (setup for `users add`)."""

    async def create() -> str:
        settings = Settings(mongodb_uri=env["FHIR_MONGODB_URI"], database=env["FHIR_DATABASE"])
        async with open_database(settings) as database:
            resource = {"resourceType": "Patient", "name": [{"family": "Stored"}]}
            return (await ResourceStore(database).create(resource, rid=rid)).id

    return asyncio.run(create())


def cli_env(settings_factory: Callable[..., Settings]) -> dict[str, str]:
    """FHIR_* variables for `fhir-server` commands on a fresh database of the test store
    (passwords hashed at the suite's cost, as its apps do)."""
    settings = settings_factory()
    return {
        "FHIR_MONGODB_URI": settings.mongodb_uri or "",
        "FHIR_DATABASE": f"cli{uuid.uuid4().hex[:10]}",
        "FHIR_PUBLIC_BASE_URL": BASE,
        "FHIR_PASSWORD_HASHING": settings.password_hashing,
    }


def audit_events(client: TestClient) -> list[dict[str, Any]]:
    """Every stored AuditEvent, once the journal is relayed (the relay task does it every
    half second; a test asks for it now)."""
    recorder = components(client).audit
    assert recorder.journal is not None
    call(client, AuditRelay(recorder.journal, recorder.store).relay)
    store = client.app.state.services.store  # type: ignore[attr-defined]

    async def events() -> list[dict[str, Any]]:
        return [body_of(doc) async for doc in store.collection("AuditEvent").find({})]

    found: list[dict[str, Any]] = call(client, events)
    return found
