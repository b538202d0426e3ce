"""What a caller may read, as search criteria per resource type.

The access policy (`auth.policy.read_limits`) works this out once per token;
everything that evaluates a criterion or returns a resource for the token
applies it: the searched type's query, every chain and `_has` link (a link
into a type the token cannot read is refused), `_include`/`_revinclude`,
conditional interactions' criteria, history. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ReadLimits:
    """Per readable type, the criteria every query over it gets; absent types are unreadable.

    `confined` are the types read only within `patient`'s compartment (or the
    public directory); `scoped` are the types whose criteria include a scope's
    `?param=` restriction, which only a query can check (not a look at the
    resource).
    """

    criteria: Mapping[str, Pairs] = field(default_factory=dict)
    patient: str | None = None
    confined: frozenset[str] = frozenset()
    scoped: frozenset[str] = frozenset()

    def of(self, resource_type: str) -> Pairs | None:
        """The criteria for a type, or None when the caller may not read it at all."""
        return self.criteria.get(resource_type)
