"""Whether a request's token is an administrator's: the `role` claim of an `admin` account.

A token without the claim (a backend service, a token minted before roles were
claimed) is not an admin's, whatever its scopes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

ADMIN = "admin"


@runtime_checkable
class _Claims(Protocol):
    @property
    def role(self) -> str | None: ...


def is_admin(ctx: object) -> bool:
    """True for an admin's `auth.policy.TokenContext`; False for anything else (or None)."""
    return isinstance(ctx, _Claims) and ctx.role == ADMIN
