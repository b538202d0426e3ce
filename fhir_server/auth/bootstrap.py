"""Assembling the authorization server's parts on one database (used by app and CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.audit.recorder import AuditRecorder
from fhir_server.auth.access import Access
from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.keys import load_keyring
from fhir_server.auth.launches import Launches
from fhir_server.auth.registration import Registration
from fhir_server.auth.resets import PasswordResets
from fhir_server.auth.server import SmartAuthorizationServer
from fhir_server.auth.tokens import Tokens
from fhir_server.auth.users import Accounts
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.database import Database
from fhir_server.store.resources import ResourceStore


@dataclass
class AuthComponents:
    settings: Settings
    store: AuthStore
    tokens: Tokens
    server: SmartAuthorizationServer
    accounts: Accounts
    clients: ClientRegistry
    launches: Launches
    resets: PasswordResets
    registration: Registration
    audit: AuditRecorder
    access: Access


async def build_auth(
    database: Database, resources: ResourceStore, settings: Settings
) -> AuthComponents:
    store = AuthStore(database)
    await store.ensure_indexes()
    tokens = Tokens(store, settings, await load_keyring(store, settings.secret_key))
    accounts = Accounts(store, settings)
    audit = AuditRecorder(resources)
    return AuthComponents(
        settings=settings,
        store=store,
        tokens=tokens,
        server=SmartAuthorizationServer(store, tokens, settings),
        accounts=accounts,
        clients=ClientRegistry(store),
        launches=Launches(store, settings),
        resets=PasswordResets(store, accounts, settings),
        registration=Registration(accounts, resources),
        audit=audit,
        access=Access(tokens, audit),
    )
