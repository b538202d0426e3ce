"""An AuditEvent (`audit.events`) as one flat row: when, who, how, what (pure).

Shared by `fhir-server audit who-accessed` and the admin console's audit page
and its CSV, so both show the same columns.
"""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "recorded",
    "agent",
    "user",
    "role",
    "client",
    "address",
    "interaction",
    "outcome",
    "resources",
)


def audit_row(event: dict[str, Any]) -> dict[str, str]:
    """One AuditEvent as the flat row an admin reads (CLI table and CSV, console)."""
    agents = event.get("agent", [])
    requestor: dict[str, Any] = next((a for a in agents if a.get("requestor")), {})
    client: dict[str, Any] = next((a for a in agents if not a.get("requestor")), {})
    who = requestor.get("who", {})
    roles = [c["code"] for r in requestor.get("role", []) for c in r.get("coding", [])]
    return {
        "recorded": event["recorded"],
        "agent": who.get("reference") or who.get("display", ""),
        "user": requestor.get("altId", ""),
        "role": ",".join(roles),
        "client": client.get("who", {}).get("identifier", {}).get("value", ""),
        "address": requestor.get("network", {}).get("address", ""),
        "interaction": " ".join(s["code"] for s in event.get("subtype", [])),
        "outcome": event.get("outcome", ""),
        "resources": " ".join(
            e["what"]["reference"]
            for e in event.get("entity", [])
            if e.get("role", {}).get("code") == "4" and "what" in e
        ),
    }
