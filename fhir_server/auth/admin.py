"""Whether a request's token is an administrator's: the `role` claim of an `admin` account.

A token without the claim (a backend service, a token minted before roles were
claimed) is not an admin's, whatever its scopes.
"""

from __future__ import annotations

from fhir_server.auth.policy import TokenContext

ADMIN = "admin"


def is_admin(ctx: object) -> bool:
    return isinstance(ctx, TokenContext) and ctx.role == ADMIN
