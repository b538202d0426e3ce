"""Framework-free request and response values.

HTTP routes and Bundle entries both become a `FhirRequest`, so a transaction
entry goes through exactly the same interaction code as a plain request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FhirRequest:
    method: str
    path: list[str]
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: dict[str, Any] | list[Any] | None = None
    # In a transaction, the id given to a POSTed resource before it is written,
    # so that other entries' urn:uuid references can point at it.
    assigned_id: str | None = None
    # The caller's validated access token (an `auth.policy.TokenContext`), carried
    # from the HTTP request into every Bundle entry; None when auth is disabled.
    auth: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


@dataclass
class FhirResponse:
    status: int
    resource: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
