"""AuditEvents over the API: read and search by admins, nothing else for anyone.

The audit trail is written by the server alone (`audit`), once per event and
never versioned, so: creating one answers 403, updating, patching or deleting
405, and `_history` (hence vread) 405. AuditEvent is not a served type
(`SERVED_TYPES`): system search, `_include`/`_revinclude` and system or type
history never reach it. Reads and searches are themselves recorded.
"""

from __future__ import annotations

from fhir_server.auth.admin import is_admin
from fhir_server.fhir.errors import Forbidden, MethodNotAllowed
from fhir_server.rest.messages import FhirRequest


def admit(req: FhirRequest) -> None:
    """Let an admin's read or search of AuditEvents through; refuse anything else."""
    rest = req.path[1:]
    if "_history" in rest:
        raise MethodNotAllowed("AuditEvents have no history: each is written once.")
    if req.method == "POST" and rest != ["_search"]:
        raise Forbidden("AuditEvents are recorded by the server only.")
    if req.method != "GET" and rest != ["_search"]:
        raise MethodNotAllowed(f"{req.method} is not supported on AuditEvent: they never change.")
    if not is_admin(req.auth):
        raise Forbidden("AuditEvents are readable by admins only.")
