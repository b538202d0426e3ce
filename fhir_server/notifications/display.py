"""How a person or place is named in a message."""

from __future__ import annotations

from typing import Any


def display_name(resource: dict[str, Any] | None) -> str:
    """`name.text`, else prefix, given and family names; a Location's `name` string."""
    if not resource:
        return ""
    if isinstance(resource.get("name"), str):
        return str(resource["name"])
    for name in resource.get("name", []):
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        return " ".join(p for p in parts if p)
    return ""
