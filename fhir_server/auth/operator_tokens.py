"""Access tokens an operator mints from the command line for a user account.

Scripts and a first `curl` need a token without a browser and a registered
app; whoever can run the CLI against the store already holds everything a
token protects. The token is an ordinary one (same keys, lifetime, scope
rules and revocation) issued to the pseudo-client `fhir-server-cli`, and the
issue is audited like any other.
"""

from __future__ import annotations

from typing import Any

from fhir_server.audit.recorder import AuditRecorder
from fhir_server.auth.keys import load_keyring
from fhir_server.auth.records import Subject
from fhir_server.auth.scopes import only_contexts, parse_resource_scope, split_scope
from fhir_server.auth.tokens import Tokens
from fhir_server.auth.users import AccountError, Accounts
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.resources import ResourceStore

CLI_CLIENT = "fhir-server-cli"


async def issue_for_user(
    store: AuthStore, resources: ResourceStore, settings: Settings, username: str, scope: str
) -> dict[str, Any]:
    """A token response for an active account; a patient gets only `patient/` scopes."""
    user = await Accounts(store, settings).get(username)
    if user is None:
        raise AccountError(f"No active account {username!r}; see 'fhir-server users list'.")
    context = "patient" if user.role == "patient" else "user"
    granted = [s for s in only_contexts(split_scope(scope), [context]) if parse_resource_scope(s)]
    if not granted:
        raise AccountError(f"A {user.role} account takes {context}/ scopes, e.g. '{context}/*.rs'.")
    subject = Subject(
        sub=user.username, role=user.role, fhir_user=user.fhir_user, patient=user.patient_id
    )
    grant = {**subject.grant_fields(), "client_id": CLI_CLIENT, "scope": " ".join(granted)}
    tokens = Tokens(store, settings, await load_keyring(store, settings.secret_key))
    issued = tokens.access_token(grant)
    await store.save_access(
        {**grant, "_id": issued.jti, "expires_at": issued.expires_at, "kind": "access"}
    )
    await AuditRecorder(resources).record(
        "token-issued", success=True, who=user.username, client_id=CLI_CLIENT
    )
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": settings.access_token_lifetime,
        "scope": grant["scope"],
    }
