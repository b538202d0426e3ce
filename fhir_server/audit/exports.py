"""AuditEvents for a bulk export's status URL and files (pure: no I/O).

The kick-off (`$export`) goes through the access gate and is recorded by
`AuditRecorder.watch`; the status poll, the cancel and the file downloads are
answered beside the FHIR endpoint (`rest.bulk_routes`), and each of them,
answered or refused, is recorded here in the same event model as every REST
interaction (`audit.events.rest_event`):

- `type` `audit-event-type|rest`; `subtype` the `restful-interaction` code,
  `read` for a poll, the manifest and a file download, `delete` for a cancel,
  plus `urn:fhir-server:operation|$export`, so one `subtype=$export` search
  lists an export's kick-off and every later access to it.
- We chose the REST `read` over DICOM 110106 "Export" for downloads. DICOM's
  Export event describes data written to media, with a destination media
  participant and one participant object per patient. We can name neither
  without reading the file. An Export-typed event would also be missed by an
  admin's `type=rest` searches and by the console's interaction column, which
  show every other access of a token.
- `outcome` 0 / 4 / 8 from the HTTP status answered (a refusal, such as another
  client's or an expired job, is 4 and its reason is in `outcomeDesc`; the
  caller gets the same 404 whatever the reason).
- `agent`: the token's user and client, as for every REST event.
- `entity`: the job, as an identifier (`urn:fhir-server:bulk-export|<job id>`,
  type System Object, role 20 "Job"; the kick-off's event names it too, see
  `job_entity`); for a download also the file
  (`urn:fhir-server:bulk-export|<job id>/<Type>.ndjson`) with its resource type
  as `entity.type` (`http://hl7.org/fhir/resource-types`, which R4's
  audit-entity-type value set includes). Neither the token nor anything of the
  file's content is in the event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fhir_server.audit.events import Access, Actor, rest_event

JOB = "urn:fhir-server:bulk-export"
_RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
_JOB_ENTITY = {
    "type": {
        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        "code": "2",
        "display": "System Object",
    },
    "role": {
        "system": "http://terminology.hl7.org/CodeSystem/object-role",
        "code": "20",
        "display": "Job",
    },
}
# What a caller may put in the URL: an unknown id or type is recorded as sent, bounded.
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_MAX_JOB_ID = 64


@dataclass(frozen=True)
class ExportAccess:
    """One request to a bulk export's status URL or one of its files."""

    kind: Literal["read", "delete"]  # a poll or a download; a cancel
    job_id: str  # as the URL names it (also an unknown one)
    status: int  # the HTTP status answered
    file_type: str | None = None  # a download's resource type, as the URL names it
    detail: str | None = None  # why it was refused or failed


def job_entity(job_id: str) -> dict[str, Any]:
    """An export job as an AuditEvent entity: named by its id, as its kick-off (recorded by
    `AuditRecorder.watch`) and every later access name it, so one identifier joins them."""
    return {"what": {"identifier": {"system": JOB, "value": job_id}}, **_JOB_ENTITY}


def export_event(
    actor: Actor, access: ExportAccess, *, event_id: str, recorded: str
) -> dict[str, Any]:
    """The AuditEvent of one access to an export's status URL or files."""
    rest = Access(kind=access.kind, status=access.status, operation="$export", detail=access.detail)
    event = rest_event(actor, rest, event_id=event_id, recorded=recorded)
    job = access.job_id[:_MAX_JOB_ID]
    entities = [job_entity(job)]
    file_type = access.file_type
    if file_type is not None and _TYPE_NAME.fullmatch(file_type):
        entities.append(
            {
                "what": {"identifier": {"system": JOB, "value": f"{job}/{file_type}.ndjson"}},
                "type": {"system": _RESOURCE_TYPES, "code": file_type},
            }
        )
    event["entity"] = entities
    return event
