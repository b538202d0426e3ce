"""What the client-assertion check and the token endpoints need of the authorization server.

`server.SmartAuthorizationServer` builds both and hands itself in; typing
them against this small protocol instead of the server class keeps the
imports one way (server -> assertion, token_endpoints -> token_server).
"""

from __future__ import annotations

from typing import Protocol

from fhir_server.auth.tokens import Tokens
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore


class TokenServer(Protocol):
    """The authorization server's store, token signer, settings and token URL."""

    store: AuthStore
    tokens: Tokens
    settings: Settings

    @property
    def token_url(self) -> str:
        """The token endpoint's URL: the audience a client assertion must name."""
        ...
