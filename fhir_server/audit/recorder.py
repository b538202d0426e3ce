"""AuditEvent recording for authentication and access decisions.

Events are written through the versioned store into the `AuditEvent`
collection. Codes: DICOM DCM 110114 "User Authentication" and 110113
"Security Alert" (event types), DCM 110122 "Login"; the finer sub-types
(token issued, refreshed, revoked, access denied) are this server's own codes.
Recording never fails the request it describes: a store error is logged only.
"""

from __future__ import annotations

import logging
from typing import Any

from fhir_server.store.clock import now_instant
from fhir_server.store.resources import ResourceStore

log = logging.getLogger("fhir_server.audit")

DCM = "http://dicom.nema.org/resources/ontology/DCM"
OURS = "urn:fhir-server:audit-subtype"
_EVENTS: dict[str, tuple[tuple[str, str], tuple[str, str, str]]] = {
    "login": (("110114", "User Authentication"), (DCM, "110122", "Login")),
    "token-issued": (("110114", "User Authentication"), (OURS, "token-issued", "Token issued")),
    "token-refreshed": (
        ("110114", "User Authentication"),
        (OURS, "token-refreshed", "Token refreshed"),
    ),
    "token-revoked": (("110114", "User Authentication"), (OURS, "token-revoked", "Token revoked")),
    "token-refused": (("110114", "User Authentication"), (OURS, "token-refused", "Token refused")),
    "access-denied": (("110113", "Security Alert"), (OURS, "access-denied", "Access denied")),
}


def audit_event(
    event: str,
    *,
    success: bool,
    who: str | None,
    client_id: str | None = None,
    address: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent resource for one security event (pure)."""
    (type_code, type_display), (sub_system, sub_code, sub_display) = _EVENTS[event]
    agent: dict[str, Any] = {"requestor": True, "who": {"display": who or "anonymous"}}
    if address:
        agent["network"] = {"address": address, "type": "2"}
    agents = [agent]
    if client_id:
        agents.append({"requestor": False, "who": {"identifier": {"value": client_id}}})
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": type_code, "display": type_display},
        "subtype": [{"system": sub_system, "code": sub_code, "display": sub_display}],
        "action": "E",
        "recorded": now_instant(),
        "outcome": "0" if success else "4",
        "agent": agents,
        "source": {"observer": {"display": "fhir-server"}},
    }
    if detail:
        resource["outcomeDesc"] = detail
    return resource


class AuditRecorder:
    def __init__(self, store: ResourceStore) -> None:
        self.store = store

    async def record(self, event: str, *, success: bool, who: str | None, **extra: Any) -> None:
        try:
            await self.store.create(audit_event(event, success=success, who=who, **extra))
        except Exception:  # the audit trail must not fail the request it records
            log.warning("could not record audit event %s", event)
