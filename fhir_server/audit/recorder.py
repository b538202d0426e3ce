"""AuditEvent recording: authentication events and every FHIR interaction of a token.

Authentication events use DICOM codes: DCM 110114 "User Authentication" and
110113 "Security Alert" (event types), DCM 110122 "Login"; the finer
sub-types (token issued, refreshed, revoked, access denied) are this
server's own codes. An admin's change to accounts, apps or signing keys is a
DCM 110136 "Security Roles Changed" event naming what it acted on (`target`).
FHIR interactions are recorded by `watch`, the access gate's one hook
(`audit.events` holds their codes); the accesses to a bulk export's status URL
and files, answered beside the FHIR endpoint, by `export_access`
(`audit.exports`).

In the server, events go to the process's journal (`audit.journal`) before
the answer does, and the relay stores them; a command-line process without
a journal stores its few events directly. Recording never fails the request
it describes: an error is logged only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from fhir_server.audit.events import SOURCE, Actor, agents, audited, rest_event
from fhir_server.audit.exports import ExportAccess, export_event, job_entity
from fhir_server.audit.journal import Journal
from fhir_server.audit.trail import Seen, Withholding, access_of, actor_of
from fhir_server.auth.policy import TokenContext
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.messages import FhirRequest
from fhir_server.store.audit_store import AuditStore
from fhir_server.store.clock import now_instant
from fhir_server.store.resources import ResourceStore

log = logging.getLogger("fhir_server.audit")
S = TypeVar("S", bound=Seen)

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
    # A report run from the command line (`fhir-server report`); the API's runs are
    # recorded by `watch` like every interaction.
    "report-run": (("110112", "Query"), (OURS, "report-run", "Report run")),
    "second-factor-on": (
        ("110114", "User Authentication"),
        (OURS, "second-factor-on", "Second factor turned on"),
    ),
    **{
        code: (("110136", "Security Roles Changed"), (OURS, code, display))
        for code, display in (
            ("user-invited", "User invited"),
            ("user-added", "User added"),
            ("user-changed", "User changed"),
            ("app-registered", "SMART app registered"),
            ("app-credentials-rotated", "SMART app credentials replaced"),
            ("app-removed", "SMART app removed"),
            ("signing-key-rotated", "Signing key rotated"),
        )
    },
}
# What an admin's action acted on (`target`): an account, a SMART app, a signing key.
TARGETS = {
    "account": "urn:fhir-server:account",
    "app": "urn:fhir-server:client",
    "key": "urn:fhir-server:signing-key",
}


def audit_event(
    event: str,
    *,
    success: bool,
    who: str | None,
    client_id: str | None = None,
    address: str | None = None,
    detail: str | None = None,
    target: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The AuditEvent resource for one security event (pure); `target` is what an admin's
    action acted on, as (a `TARGETS` key, its name)."""
    (type_code, type_display), (sub_system, sub_code, sub_display) = _EVENTS[event]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": DCM, "code": type_code, "display": type_display},
        "subtype": [{"system": sub_system, "code": sub_code, "display": sub_display}],
        "action": "E",
        "recorded": now_instant(),
        "outcome": "0" if success else "4",
        "agent": agents(Actor(username=who, client_id=client_id, address=address)),
        "source": SOURCE,
    }
    if detail:
        resource["outcomeDesc"] = detail
    if target:
        kind, name = target
        resource["entity"] = [{"what": {"identifier": {"system": TARGETS[kind], "value": name}}}]
    return resource


class AuditRecorder:
    def __init__(self, store: ResourceStore, journal: Journal | None = None) -> None:
        self.store = AuditStore(store)
        self.journal = journal

    async def record(self, event: str, *, success: bool, who: str | None, **extra: Any) -> None:
        await self._keep(audit_event(event, success=success, who=who, **extra))

    async def watch(self, req: FhirRequest, interaction: Awaitable[S]) -> S:
        """Run one interaction of a token through the gate and record it, answered or refused
        (the gate's one hook; `interaction` yields what the gate let out).

        Without a token (auth switched off) nothing is recorded: there is no
        one to name, and that mode is for development and the REST core's tests.
        """
        ctx = req.auth
        if not isinstance(ctx, TokenContext) or not audited(req.interaction.kind):
            return await interaction
        try:
            seen = await interaction
        except FhirError as error:
            withheld = error.withheld if isinstance(error, Withholding) else ()
            await self._keep_access(ctx, req, error.status, None, error.diagnostics, withheld)
            raise
        except Exception:
            await self._keep_access(ctx, req, 500, None, "Internal Server Error")
            raise
        await self._keep_access(ctx, req, seen.response.status, seen, None)
        return seen

    async def export_access(self, ctx: TokenContext, access: ExportAccess) -> None:
        """Record one request of a token to a bulk export's status URL or files."""
        event_id, recorded = str(uuid.uuid4()), now_instant()
        await self._keep(export_event(actor_of(ctx), access, event_id=event_id, recorded=recorded))

    async def _keep_access(
        self,
        ctx: TokenContext,
        req: FhirRequest,
        status: int,
        seen: Seen | None,
        detail: str | None,
        withheld: tuple[dict[str, Any], ...] = (),
    ) -> None:
        access = access_of(req, status, seen, detail, withheld)
        event_id, recorded = str(uuid.uuid4()), now_instant()
        event = rest_event(actor_of(ctx), access, event_id=event_id, recorded=recorded)
        if access.job is not None:  # a `$export` kick-off: joined with the job's later accesses
            event.setdefault("entity", []).append(job_entity(access.job))
        await self._keep(event)

    async def _keep(self, event: dict[str, Any]) -> None:
        try:
            if self.journal is not None:
                self.journal.append(event)
            else:
                await self.store.insert([self.store.row(event)])
        except Exception:  # the audit trail must not fail the request it records
            log.error("could not record an audit event (%s)", event["type"]["code"])
