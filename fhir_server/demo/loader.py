"""Writing the demo clinic into a store so that a second run changes nothing.

Each resource has a fixed id and is written with a PUT-style update only when
its stored content differs (ignoring `meta`, which the store stamps), so
repeated loads neither create duplicates nor add versions; a resource someone
edited or deleted is put back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.demo.clinic import demo_resources
from fhir_server.fhir.validation import validate_resource
from fhir_server.store.resources import ResourceStore

Progress = Callable[[int, int], None]
"""Called with (done, total) after each resource."""


@dataclass
class DemoSummary:
    """What a load did: resources per type, and how many were written or left alone."""

    by_type: Counter[str] = field(default_factory=Counter)
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """What the demo sets: everything but the store's `meta` stamps (its tags are the demo's)."""
    content = {key: value for key, value in resource.items() if key != "meta"}
    tags = (resource.get("meta") or {}).get("tag")
    return {**content, "meta": {"tag": tags}} if tags else content


async def load_demo(store: ResourceStore, progress: Progress | None = None) -> DemoSummary:
    """Validate and write every demo resource that is missing or differs from the stored one."""
    resources = demo_resources()
    summary = DemoSummary()
    for done, resource in enumerate(resources, start=1):
        validate_resource(resource)
        rtype = resource["resourceType"]
        summary.by_type[rtype] += 1
        stored = await store.current(rtype, resource["id"])
        if stored is not None and stored.resource is not None:
            if _content(stored.resource) == _content(resource):
                summary.unchanged += 1
            else:
                await store.update(resource)
                summary.updated += 1
        else:
            await store.update(resource)
            summary.created += 1
        if progress:
            progress(done, len(resources))
    return summary
