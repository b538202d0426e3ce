"""How the web UI's two sites are registered with the authorization server (by `app.py`).

The patient portal (`/portal`) and the clinic workspace (`/clinic`) are each a
confidential client of this server. A client's secret is derived from the
server's secret key, so every replica knows it without storing it anywhere,
and a new secret key gives a new client secret at the next start.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fhir_server.settings import Settings

# What a patient does in the portal: read the public directory and their own record, book,
# change and cancel their own appointments; `online_access` keeps a session alive past one
# access token's lifetime, and ends with it.
PORTAL_SCOPE = "openid fhirUser launch/patient online_access patient/*.cruds"
# Clinic staff act as themselves: what their role allows (`auth.roles` narrows `user/*`).
CLINIC_SCOPE = "openid fhirUser online_access user/*.cruds"


@dataclass(frozen=True)
class UiClient:
    """One site of the web UI as an OAuth client; `path` is where the site is mounted."""

    client_id: str
    name: str
    scope: str
    path: str
    redirect_uri: str
    secret: str


def site_root(settings: Settings) -> str:
    """The server's public root URL (the FHIR base without its `/fhir`)."""
    base = settings.base_url
    return base.removesuffix("/fhir")


def _client(settings: Settings, client_id: str, name: str, scope: str) -> UiClient:
    label = f"{client_id}-client-secret".encode()
    digest = hmac.new(settings.secret_key.encode(), label, hashlib.sha256)
    return UiClient(
        client_id=client_id,
        name=name,
        scope=scope,
        path=f"/{client_id}",
        redirect_uri=f"{site_root(settings)}/{client_id}/callback",
        secret=digest.hexdigest(),
    )


def portal_client(settings: Settings) -> UiClient:
    return _client(settings, "portal", "Clinic patient portal", PORTAL_SCOPE)


def clinic_client(settings: Settings) -> UiClient:
    return _client(settings, "clinic", "Clinic workspace", CLINIC_SCOPE)
