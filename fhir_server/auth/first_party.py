"""The server's own web clients (the patient portal), registered at every start.

Idempotent and safe with several replicas starting at once: a client that is
already registered with the same redirect URI, scope and secret is left as it
is; one that differs (a new base URL or secret key) is replaced.
"""

from __future__ import annotations

import contextlib

import anyio.to_thread

from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.users import AccountError


async def ensure_confidential_client(
    clients: ClientRegistry,
    client_id: str,
    name: str,
    scope: str,
    redirect_uri: str,
    secret: str,
) -> None:
    current = await clients.get(client_id)
    if (
        current is not None
        and current.kind == "confidential"
        and current.redirect_uris == [redirect_uri]
        and current.scope == scope
        and current.first_party
        and await anyio.to_thread.run_sync(current.check_client_secret, secret)
    ):
        return
    if current is not None:
        await clients.remove(client_id)
    with contextlib.suppress(AccountError):  # another replica registered it meanwhile
        await clients.add(
            client_id,
            name,
            "confidential",
            scope,
            redirect_uris=[redirect_uri],
            secret=secret,
            first_party=True,
        )
