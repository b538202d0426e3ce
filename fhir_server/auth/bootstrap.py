"""Assembling the authorization server's parts on one database (used by app and CLI)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio.to_thread

from fhir_server.audit.journal import Journal
from fhir_server.audit.recorder import AuditRecorder
from fhir_server.auth.access import Access
from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.keys import load_keyring
from fhir_server.auth.launches import Launches
from fhir_server.auth.registration import Registration
from fhir_server.auth.resets import PasswordResets
from fhir_server.auth.server import SmartAuthorizationServer
from fhir_server.auth.tokens import Tokens
from fhir_server.auth.users import Accounts, dummy_hash
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
    _purged_at: float = field(default=0.0, repr=False)

    async def housekeeping(self, every: float = 300.0) -> None:
        """Purge expired records, at most once per `every` seconds in this process."""
        if time.monotonic() - self._purged_at >= every:
            self._purged_at = time.monotonic()
            await self.store.purge_expired(int(time.time()))


async def build_auth(
    database: Database, resources: ResourceStore, settings: Settings, journal: Journal | None = None
) -> AuthComponents:
    store = AuthStore(database)
    await store.ensure_indexes()
    tokens = Tokens(store, settings, await load_keyring(store, settings.secret_key))
    accounts = Accounts(store, settings)
    await accounts.migrate_roles()
    # made now, so that the first refused sign-in costs what every other one does
    await anyio.to_thread.run_sync(dummy_hash, settings.password_hashing)
    audit = AuditRecorder(resources, journal)
    return AuthComponents(
        settings=settings,
        store=store,
        tokens=tokens,
        server=SmartAuthorizationServer(store, tokens, settings),
        accounts=accounts,
        clients=ClientRegistry(store, settings),
        launches=Launches(store, settings),
        resets=PasswordResets(store, accounts, settings),
        registration=Registration(accounts, resources),
        audit=audit,
        access=Access(tokens, audit),
    )
