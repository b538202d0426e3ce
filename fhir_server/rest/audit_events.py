"""AuditEvents over the API: read and search by admins, nothing else for anyone.

The audit trail is written by the server alone (`audit`), once per event and
never versioned, so: creating one answers 403; updating, patching, deleting,
`_history` (hence vread) and operations 405. AuditEvent is not a served type
(`SERVED_TYPES`): system search, `_include`/`_revinclude` and system or type
history never reach it. Reads and searches are themselves recorded.
"""

from __future__ import annotations

from fhir_server.auth.admin import is_admin
from fhir_server.fhir.errors import Forbidden, MethodNotAllowed
from fhir_server.rest.messages import FhirRequest

_READS = frozenset({"read", "search"})


def admit(req: FhirRequest) -> None:
    """Let an admin's read or search of AuditEvents through; refuse anything else."""
    kind = req.interaction.kind
    if kind == "create":
        raise Forbidden("AuditEvents are recorded by the server only.")
    if kind not in _READS:
        raise MethodNotAllowed("AuditEvents are only read and searched: they never change.")
    if not is_admin(req.auth):
        raise Forbidden("AuditEvents are readable by admins only.")
