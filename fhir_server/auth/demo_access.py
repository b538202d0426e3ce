"""Demo logins for `fhir-server demo`: a patient, a practitioner, the front desk, an admin
and a public SMART app (one login per role a clinic user meets, see `auth.roles`).

Idempotent: running it again leaves existing accounts and the client as they
are. The password is fixed and printed, so it is refused outside development.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.users import Accounts
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore

DEMO_PASSWORD = "demo-clinic-passphrase"
DEMO_CLIENT = "demo-app"
DEMO_SCOPE = (
    "openid fhirUser launch launch/patient offline_access online_access "
    "patient/*.cruds user/*.cruds patient/*.read patient/*.write user/*.read user/*.write"
)
DEMO_REDIRECTS = ("http://localhost:8080/callback", "http://127.0.0.1:8080/callback")


@dataclass(frozen=True)
class DemoAccess:
    patient_login: str
    practitioner_login: str
    frontdesk_login: str
    admin_login: str
    password: str
    client_id: str
    redirect_uris: tuple[str, ...]


async def ensure_demo_access(
    store: AuthStore, settings: Settings, patient: str, practitioner: str
) -> DemoAccess:
    """Create (once) the demo logins for `Patient/...` and `Practitioner/...` references."""
    if settings.environment == "production":
        raise ValueError("Demo logins have a published password; not in production.")
    accounts = Accounts(store, settings)
    for username, role, fhir_user in (
        ("demo-patient", "patient", patient),
        ("demo-practitioner", "practitioner", practitioner),
        ("demo-frontdesk", "frontdesk", None),
        ("demo-admin", "admin", None),
    ):
        if await store.user(username) is None:
            await accounts.add(username, DEMO_PASSWORD, role, fhir_user)
    clients = ClientRegistry(store, settings)
    if await clients.get(DEMO_CLIENT) is None:
        await clients.add(
            DEMO_CLIENT, "Demo SMART app", "public", DEMO_SCOPE, redirect_uris=list(DEMO_REDIRECTS)
        )
    return DemoAccess(
        "demo-patient",
        "demo-practitioner",
        "demo-frontdesk",
        "demo-admin",
        DEMO_PASSWORD,
        DEMO_CLIENT,
        DEMO_REDIRECTS,
    )
