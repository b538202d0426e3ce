"""How the portal is registered with the authorization server (done by `app.py` at start-up).

The portal is a confidential client: its secret is derived from the server's
secret key, so every replica knows it without storing it anywhere, and a new
secret key gives a new client secret at the next start.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fhir_server.settings import Settings

CLIENT_ID = "portal"
CLIENT_NAME = "Clinic patient portal"
# What a patient does in the portal: read the public directory and their own record, book,
# change and cancel their own appointments; `online_access` keeps a session alive past one
# access token's lifetime, and ends with it.
SCOPE = "openid fhirUser launch/patient online_access patient/*.cruds"


@dataclass(frozen=True)
class PortalClient:
    client_id: str
    name: str
    scope: str
    redirect_uri: str
    secret: str


def site_root(settings: Settings) -> str:
    """The server's public root URL (the FHIR base without its `/fhir`)."""
    base = settings.base_url
    return base.removesuffix("/fhir")


def portal_client(settings: Settings) -> PortalClient:
    digest = hmac.new(settings.secret_key.encode(), b"portal-client-secret", hashlib.sha256)
    return PortalClient(
        client_id=CLIENT_ID,
        name=CLIENT_NAME,
        scope=SCOPE,
        redirect_uri=f"{site_root(settings)}/portal/callback",
        secret=digest.hexdigest(),
    )
