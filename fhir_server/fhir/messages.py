"""Framework-free request and response values.

HTTP routes and Bundle entries both become a `FhirRequest`, so a transaction
entry goes through exactly the same interaction code (and the same access
gate) as a plain request. They live in `fhir/` so that the access policy can
read them without importing the REST edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from fhir_server.fhir.read_limits import ReadLimits
from fhir_server.fhir.routing import Interaction, classify


class Caller(Protocol):
    """A validated access token as the interactions see it (`auth.policy.TokenContext`)."""

    @property
    def limits(self) -> ReadLimits:
        """What the token may read, applied to every criterion and every result."""
        ...


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
    auth: Caller | None = None

    @cached_property
    def interaction(self) -> Interaction:
        """The route table's reading of this request, worked out once."""
        return classify(self.method, self.path)

    @property
    def limits(self) -> ReadLimits | None:
        """What the caller may read; None when auth is off (everything)."""
        return None if self.auth is None else self.auth.limits

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
